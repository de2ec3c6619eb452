package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every command {@code ./loraflow --help} lists, run as a user runs it: {@code --help} and {@code -h} print its
 * usage and exit 0 at once (no build, no benchmark, no service started); {@code --no-such-flag} exits 2 with one
 * line that names the option and points at --help, never a stack trace. The CLI's commands need the jar the
 * build packaged (skipped, saying so, under ./mvnw test alone); the launcher is told not to build anything.
 */
class LauncherHelpTest {

    private static final Path REPOSITORY = Path.of("").toAbsolutePath().getParent();
    /** Far more than a usage takes (a JVM start at most); far less than a build or a benchmark. */
    private static final Duration QUICK = Duration.ofSeconds(90);
    /** A command line of the launcher's usage: two spaces, the command, then its description. */
    private static final Pattern COMMAND_LINE = Pattern.compile("^  ([a-z][a-z0-9-]*)\\s+\\S.*$");
    private static final String NO_JAR = "LORAFLOW_NO_BUILD=1 forbids building it";
    /** What the JVM itself prints first whenever the Vector API module is added; not the command's own words. */
    private static final String INCUBATOR_WARNING = "WARNING: Using incubator modules: jdk.incubator.vector";

    @TempDir
    Path home;

    record Result(int exitCode, String output) {}

    @TestFactory
    Stream<DynamicTest> everyListedCommandAnswersHelpAndRejectsAnUnknownOption() throws Exception {
        List<String> commands = listedCommands();
        assertTrue(commands.containsAll(List.of("train", "up", "serve", "test", "bench", "bench-serving", "gpu-check",
                "bench-store", "bench-memory", "bench-trainer", "demo", "help")), "the usage lists " + commands);
        return commands.stream().map(command -> DynamicTest.dynamicTest(command, () -> check(command)));
    }

    private void check(String command) throws Exception {
        for (String help : List.of("--help", "-h")) {
            Result result = loraflow(command, help);
            assumeFalse(result.output().contains(NO_JAR), "skipped: the jar ./loraflow " + command
                    + " runs is not packaged (./mvnw test alone): " + result.output().strip());
            assertEquals(0, result.exitCode(), "./loraflow " + command + " " + help + ":\n" + result.output());
            assertTrue(result.output().toLowerCase().contains("usage: "), "./loraflow " + command + " " + help
                    + " prints no usage:\n" + result.output());
            assertNoStackTrace(command + " " + help, result.output());
        }
        if (command.equals("test")) {
            // Its other arguments go to Maven, whose parser answers them (and a Maven build inside this one
            // would be no test of the launcher).
            return;
        }
        Result wrong = loraflow(command, "--no-such-flag");
        String what = "./loraflow " + command + " --no-such-flag";
        assertEquals(2, wrong.exitCode(), what + ":\n" + wrong.output());
        List<String> lines = wrong.output().lines().filter(line -> !line.isBlank() && !line.equals(INCUBATOR_WARNING))
                .toList();
        assertEquals(1, lines.size(), what + " says more than one line:\n" + wrong.output());
        assertTrue(lines.getFirst().contains("--no-such-flag") && lines.getFirst().contains("--help"),
                what + " names neither the option nor --help: " + lines.getFirst());
        assertNoStackTrace(command + " --no-such-flag", wrong.output());
    }

    @Test
    void helpOfACommandIsThatCommandsHelp() throws Exception {
        Result viaHelp = loraflow("help", "serve");
        assertEquals(0, viaHelp.exitCode(), viaHelp.output());
        assertEquals(loraflow("serve", "--help").output(), viaHelp.output());
        Result unknown = loraflow("help", "no-such-command");
        assertEquals(2, unknown.exitCode(), unknown.output());
        assertEquals(1, unknown.output().lines().count(), unknown.output());
    }

    /**
     * A command's first run leaves its class-data-sharing archive in the owner-only LORAFLOW_CDS_DIR, and a later run
     * starts from it saying nothing more; a directory others may write to is not used.
     */
    @Test
    void aCommandStartsFromTheArchiveOfItsFirstRunKeptInAnOwnerOnlyDirectory() throws Exception {
        Result first = loraflow("eval", "--help");
        assumeFalse(first.output().contains(NO_JAR), "skipped: the jar is not packaged (./mvnw test alone)");
        Path archives = home.resolve("cds");
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(archives)));
        List<String> written = fileNames(archives);
        assertEquals(1, written.size(), written.toString());
        assertTrue(written.getFirst().matches("cli-[0-9]+-eval-[0-9]+\\.jsa"), written.toString());
        assertEquals(first, loraflow("eval", "--help"));
        assertEquals(written, fileNames(archives));

        Files.delete(archives.resolve(written.getFirst()));
        Files.setPosixFilePermissions(archives, PosixFilePermissions.fromString("rwxrwxrwx"));
        assertEquals(first, loraflow("eval", "--help"));
        assertEquals(List.of(), fileNames(archives), "an archive written into a directory others may write to");
    }

    private static List<String> fileNames(Path directory) throws IOException {
        try (Stream<Path> files = Files.list(directory)) {
            return files.map(file -> file.getFileName().toString()).sorted().toList();
        }
    }

    private static void assertNoStackTrace(String what, String output) {
        assertFalse(output.contains("Exception") || output.contains("\tat ") || output.contains("at dev.loraflow"),
                "./loraflow " + what + " printed a stack trace:\n" + output);
    }

    /** The commands of the launcher's usage, in its order. */
    private List<String> listedCommands() throws Exception {
        Result usage = loraflow("--help");
        assertEquals(0, usage.exitCode(), usage.output());
        List<String> commands = new ArrayList<>();
        boolean inCommands = false;
        for (String line : usage.output().lines().toList()) {
            if (line.equals("commands:")) {
                inCommands = true;
            } else if (inCommands && line.isBlank()) {
                break;
            } else if (inCommands) {
                Matcher command = COMMAND_LINE.matcher(line);
                if (command.matches()) {
                    commands.add(command.group(1));
                }
            }
        }
        return commands;
    }

    /**
     * The launcher takes a JDK's version from its release file without starting its java (a JVM start for every JDK
     * it tried, on every command, was half a second of {@code ./loraflow merge --help}), and asks the java of a JDK
     * that has no release file; either way the command then runs on that JDK's java.
     */
    @Test
    void aJdksVersionComesFromItsReleaseFileElseFromItsJava() throws Exception {
        Path withRelease = fakeJdk("with-release", "");
        Files.writeString(withRelease.resolve("release"), "IMPLEMENTOR=\"Test\"\nJAVA_VERSION=\"25.0.3\"\n");
        List<String> calls = javaCalls(withRelease);
        assertTrue(calls.stream().anyMatch(call -> call.contains("-jar")), "the command did not run on it: " + calls);
        assertFalse(calls.stream().anyMatch(call -> call.contains("-XshowSettings")),
                "started to tell its version although its release file says it: " + calls);

        Path withoutRelease = fakeJdk("without-release",
                "case \"$*\" in *-XshowSettings*) echo '    java.specification.version = 25' >&2 ;; esac\n");
        calls = javaCalls(withoutRelease);
        assertTrue(calls.stream().anyMatch(call -> call.contains("-XshowSettings")), "not asked its version: " + calls);
        assertTrue(calls.stream().anyMatch(call -> call.contains("-jar")), "the command did not run on it: " + calls);
    }

    /** The arguments of every start of {@code jdk}'s java while {@code ./loraflow merge --help} runs on it. */
    private List<String> javaCalls(Path jdk) throws Exception {
        Result result = loraflow(jdk, "merge", "--help");
        assumeFalse(result.output().contains(NO_JAR), "skipped: the jar ./loraflow merge runs is not packaged (./mvnw"
                + " test alone): " + result.output().strip());
        Path calls = jdk.resolve("calls");
        return Files.exists(calls) ? Files.readAllLines(calls) : List.of();
    }

    /**
     * A JDK's directory whose bin/java writes its arguments to a line of {@code calls} there, runs {@code script} and
     * fails (it runs no command), beside a bin/javac.
     */
    private Path fakeJdk(String name, String script) throws IOException {
        Path jdk = home.resolve(name);
        Path bin = Files.createDirectories(jdk.resolve("bin"));
        Files.writeString(bin.resolve("java"), "#!/bin/sh\necho \"$*\" >> '" + jdk.resolve("calls") + "'\n" + script
                + "exit 1\n");
        Files.writeString(bin.resolve("javac"), "#!/bin/sh\nexit 0\n");
        for (String tool : List.of("java", "javac")) {
            Files.setPosixFilePermissions(bin.resolve(tool), PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        return jdk;
    }

    private Result loraflow(String... arguments) throws IOException, InterruptedException {
        return loraflow(Path.of(System.getProperty("java.home")), arguments);
    }

    private Result loraflow(Path javaHome, String... arguments) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(REPOSITORY.resolve("loraflow").toString()));
        command.addAll(List.of(arguments));
        Path output = Files.createTempFile(home, "output", ".txt");
        ProcessBuilder builder = new ProcessBuilder(command)
                .directory(REPOSITORY.toFile())
                .redirectErrorStream(true)
                .redirectOutput(output.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        builder.environment().put("LORAFLOW_HOME", home.toString());
        builder.environment().put("JAVA_HOME", javaHome.toString());
        // the commands' class-data-sharing archives stay in the module's target/tmp, not in /tmp
        builder.environment().put("LORAFLOW_CDS_DIR", home.resolve("cds").toString());
        // Inside a Maven build: the launcher must not start one of its own.
        builder.environment().put("LORAFLOW_NO_BUILD", "1");
        Process process = builder.start();
        if (!process.waitFor(QUICK.toMillis(), TimeUnit.MILLISECONDS)) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            throw new AssertionError("./loraflow " + String.join(" ", arguments) + " did not return within " + QUICK
                    + " (it builds or runs something):\n" + Files.readString(output));
        }
        return new Result(process.exitValue(), Files.readString(output));
    }
}
