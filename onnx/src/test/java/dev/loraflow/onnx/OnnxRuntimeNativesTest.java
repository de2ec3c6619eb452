package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.onnxruntime.OrtEnvironment;
import com.sun.security.auth.module.UnixSystem;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ONNX Runtime started for real in child JVMs, each with its own java.io.tmpdir: where its native libraries
 * were loaded from (the child reads its own /proc/self/maps), and what is left in that directory afterwards.
 */
class OnnxRuntimeNativesTest {

    private static final String LIBRARY = "libonnxruntime.so";
    private static final String JNI_LIBRARY = "libonnxruntime4j_jni.so";

    @TempDir
    Path tmp;

    /** The child: loads ONNX Runtime as the product does and says which libonnxruntime.so it mapped. */
    public static final class Child {
        public static void main(String[] args) throws IOException {
            OrtEnvironment environment = OnnxRuntimeNatives.environment();
            System.out.println("ONNX Runtime " + environment.getVersion() + ", providers " + OrtEnvironment.getAvailableProviders());
            try (Stream<String> maps = Files.lines(Path.of("/proc/self/maps"))) {
                System.out.println("loaded " + maps.filter(line -> line.endsWith("/" + LIBRARY)).findFirst()
                        .map(line -> line.substring(line.indexOf('/'))).orElse("nothing"));
            }
        }
    }

    @BeforeAll
    static void linux() {
        assumeTrue(Files.isRegularFile(Path.of("/proc/self/maps")), "Linux: the child reads /proc/self/maps");
    }

    private record Run(int exitCode, String output, Path loaded) {}

    /** A child JVM with {@code tmp} as its java.io.tmpdir, not yet started. */
    private ProcessBuilder childProcess(List<String> jvmOptions) {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "-Xmx64m", "--enable-native-access=ALL-UNNAMED", "-Djava.io.tmpdir=" + tmp));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), Child.class.getName()));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().remove(OnnxRuntimeNatives.CACHE_ENVIRONMENT);
        return builder;
    }

    private Run child(List<String> jvmOptions, Map<String, String> environment) throws Exception {
        ProcessBuilder builder = childProcess(jvmOptions);
        builder.environment().putAll(environment);
        return finish(builder.start());
    }

    private static Run finish(Process process) throws Exception {
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), output);
        Path loaded = output.lines().filter(line -> line.startsWith("loaded ")).findFirst()
                .map(line -> Path.of(line.substring("loaded ".length()))).orElse(null);
        return new Run(process.exitValue(), output, loaded);
    }

    private Run child() throws Exception {
        return child(List.of(), Map.of());
    }

    private Path defaultCache() {
        return tmp.resolve("loraflow-onnxruntime-" + System.getProperty("user.name").replaceAll("[^A-Za-z0-9._-]", "_"));
    }

    private static List<Path> named(Path root, String name) throws IOException {
        try (Stream<Path> files = Files.walk(root)) {
            return files.filter(file -> file.getFileName().toString().equals(name)).toList();
        }
    }

    private List<String> temporaryCopies() throws IOException {
        try (Stream<Path> entries = Files.list(tmp)) {
            return entries.map(entry -> entry.getFileName().toString()).filter(name -> name.startsWith("onnxruntime-java")).toList();
        }
    }

    private static byte[] sha256(byte[] content) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(content);
    }

    private static byte[] sha256(Path file) throws Exception {
        return sha256(Files.readAllBytes(file));
    }

    /** The library as the ONNX Runtime jar this JVM runs with holds it. */
    private static byte[] fromJar(String library) throws Exception {
        Path jar = Path.of(OrtEnvironment.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        String platform = "linux-" + (System.getProperty("os.arch").equals("aarch64") ? "aarch64" : "x64");
        try (ZipFile zip = new ZipFile(jar.toFile());
             InputStream in = zip.getInputStream(zip.getEntry("ai/onnxruntime/native/" + platform + "/" + library))) {
            return in.readAllBytes();
        }
    }

    @Test
    void twoStartsLoadOneCopyAndLeaveNoTemporaryDirectory() throws Exception {
        Run first = child();
        assertEquals(0, first.exitCode(), first.output());
        Path copy = first.loaded();
        assertTrue(copy != null && copy.startsWith(defaultCache()), first.output());
        Object written = Files.getAttribute(copy, "unix:ino");
        long modified = Files.getLastModifiedTime(copy).toMillis();

        Run second = child();
        assertEquals(0, second.exitCode(), second.output());
        assertEquals(copy, second.loaded(), second.output());
        assertEquals(written, Files.getAttribute(copy, "unix:ino"), "the second start re-wrote the library");
        assertEquals(modified, Files.getLastModifiedTime(copy).toMillis());

        assertEquals(List.of(copy), named(tmp, LIBRARY));
        assertEquals(List.of(), temporaryCopies());
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(defaultCache())));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(copy.getParent())));
        assertArrayEquals(sha256(fromJar(LIBRARY)), sha256(copy));
        assertFalse(second.output().contains("replacing") || second.output().contains("not using"), second.output());
    }

    @Test
    void concurrentFirstStartsAgreeOnOneWholeCopy() throws Exception {
        List<Process> processes = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            processes.add(childProcess(List.of()).start());
        }
        for (Process process : processes) {
            Run run = finish(process);
            assertEquals(0, run.exitCode(), run.output());
            assertTrue(run.loaded().startsWith(defaultCache()), run.output());
        }
        Path copy = named(tmp, LIBRARY).getFirst();
        assertEquals(List.of(copy), named(tmp, LIBRARY));
        try (Stream<Path> files = Files.list(copy.getParent())) {
            assertEquals(List.of(".lock", LIBRARY, JNI_LIBRARY), files.map(file -> file.getFileName().toString()).sorted().toList(),
                    "no half-written .part file is left");
        }
        assertArrayEquals(sha256(fromJar(LIBRARY)), sha256(copy));
        assertEquals(List.of(), temporaryCopies());
    }

    @Test
    void tamperedLibraryIsReplacedBeforeItIsLoaded() throws Exception {
        Run first = child();
        assertEquals(0, first.exitCode(), first.output());
        Path jni = first.loaded().resolveSibling(JNI_LIBRARY);
        byte[] tampered = Files.readAllBytes(jni);
        tampered[tampered.length / 2] ^= 1;
        Files.setPosixFilePermissions(jni, PosixFilePermissions.fromString("rw-------"));
        Files.write(jni, tampered);

        Run second = child();
        assertEquals(0, second.exitCode(), second.output());
        assertTrue(second.output().contains("replacing " + jni + ": it is not the library the ONNX Runtime jar holds"),
                second.output());
        assertArrayEquals(sha256(fromJar(JNI_LIBRARY)), sha256(jni));
        assertEquals(first.loaded(), second.loaded());
    }

    @Test
    void worldWritableCacheIsNotUsed() throws Exception {
        Files.createDirectory(defaultCache(), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Files.setPosixFilePermissions(defaultCache(), PosixFilePermissions.fromString("rwxrwxrwx"));
        assertRefused(defaultCache() + " is writable by others (rwxrwxrwx)");
    }

    @Test
    void cacheThatIsALinkIsNotUsed() throws Exception {
        Path elsewhere = Files.createDirectory(tmp.resolve("elsewhere"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Files.createSymbolicLink(defaultCache(), elsewhere);
        assertRefused(defaultCache() + " is not a directory but a link");
        try (Stream<Path> files = Files.list(elsewhere)) {
            assertEquals(0, files.count());
        }
    }

    @Test
    void someoneElsesCacheIsNotUsed() throws Exception {
        assumeTrue(new UnixSystem().getUid() == 0, "only root can give a directory to another user");
        Files.createDirectory(defaultCache(), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Files.setAttribute(defaultCache(), "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
        assertRefused(defaultCache() + " belongs to uid 65534, not to this user (uid 0)");
    }

    /** The child says why, loads ONNX Runtime's own temporary copy, and writes nothing into the planted directory. */
    private void assertRefused(String reason) throws Exception {
        Run run = child();
        assertEquals(0, run.exitCode(), run.output());
        assertTrue(run.output().contains("not using " + defaultCache() + " for ONNX Runtime's native libraries: " + reason
                + "; remove it or set loraflow.onnxruntime.cache (LORAFLOW_ONNXRUNTIME_CACHE)"), run.output());
        assertTrue(run.loaded().getParent().getFileName().toString().startsWith("onnxruntime-java"), run.output());
        assertEquals(List.of(), named(defaultCache(), LIBRARY));
    }

    @Test
    void cacheNamedByTheEnvironmentIsUsed() throws Exception {
        Path configured = tmp.resolve("configured").resolve("cache");
        Run run = child(List.of(), Map.of(OnnxRuntimeNatives.CACHE_ENVIRONMENT, configured.toString()));
        assertEquals(0, run.exitCode(), run.output());
        assertTrue(run.loaded().startsWith(configured), run.output());
        assertFalse(Files.exists(defaultCache()));
    }

    @Test
    void onnxRuntimesOwnPropertyIsLeftInCharge() throws Exception {
        Path own = Files.createDirectory(tmp.resolve("own"));
        for (String library : List.of(LIBRARY, JNI_LIBRARY)) {
            Files.write(own.resolve(library), fromJar(library));
        }
        Run run = child(List.of("-Donnxruntime.native.path=" + own), Map.of());
        assertEquals(0, run.exitCode(), run.output());
        assertEquals(own.resolve(LIBRARY), run.loaded(), run.output());
        assertFalse(Files.exists(defaultCache()));
    }
}
