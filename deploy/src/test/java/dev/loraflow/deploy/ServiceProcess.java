package dev.loraflow.deploy;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * One packaged service (its {@code quarkus-run.jar}) as a separate process on a fixed free port, that a test
 * can kill without warning and start again with the same settings; its output is appended to one log.
 */
public final class ServiceProcess implements AutoCloseable {

    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private final String name;
    private final Path jar;
    private final int port;
    private final Map<String, String> environment;
    private final Path log;
    private List<String> jvmOptions = List.of("-Xmx768m");
    private Process process;
    private int starts;

    public ServiceProcess(String name, Path jar, Map<String, String> environment, Path logs) throws IOException {
        this.name = name;
        this.jar = jar;
        this.port = freePort();
        this.environment = new HashMap<>(environment);
        this.log = logs.resolve(name + ".log");
    }

    /** JVM options in place of the default {@code -Xmx768m} (a smaller heap, system properties), for the next starts. */
    public ServiceProcess jvmOptions(String... options) {
        jvmOptions = List.of(options);
        return this;
    }

    public ServiceProcess start() throws IOException {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xss4m",
                // Its temporary files (ONNX Runtime's native libraries, left behind when it is killed) go where
                // this test JVM's go: the module's target/tmp.
                "-Djava.io.tmpdir=" + System.getProperty("java.io.tmpdir")));
        command.addAll(jvmOptions);
        command.addAll(List.of("-jar", jar.toString()));
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.environment().putAll(environment);
        builder.environment().put("QUARKUS_HTTP_PORT", Integer.toString(port));
        builder.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        process = builder.start();
        starts++;
        return this;
    }

    /** SIGKILL: no shutdown hook, no commit, no flush — as a node or the OOM killer ends it. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            throw new AssertionError(name + " did not die of SIGKILL within 30 s");
        }
    }

    public String name() {
        return name;
    }

    public int port() {
        return port;
    }

    public Path log() {
        return log;
    }

    /** How many times the process was started. */
    public int starts() {
        return starts;
    }

    public boolean running() {
        return process != null && process.isAlive();
    }

    /** The status code and body of a GET, or -1 while nothing answers. */
    public HttpResponse<String> get(String path) throws InterruptedException {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                    .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException notListening) {
            return null;
        }
    }

    /** Waits until {@code path} answers 200 (e.g. /q/health/ready), failing with the log's tail. */
    public void awaitOk(String path, Duration timeout) throws InterruptedException, IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!running()) {
                throw new AssertionError(name + " exited with " + process.exitValue() + ":\n" + tail());
            }
            HttpResponse<String> response = get(path);
            if (response != null && response.statusCode() == 200) {
                return;
            }
            Thread.sleep(250);
        }
        throw new AssertionError(name + ": " + path + " not 200 within " + timeout.toSeconds() + " s:\n" + tail());
    }

    public String tail() throws IOException {
        String text = Files.exists(log) ? Files.readString(log) : "";
        return text.length() > 6000 ? text.substring(text.length() - 6000) : text;
    }

    /** SIGTERM, then SIGKILL after 20 s. */
    @Override
    public void close() throws InterruptedException {
        if (process != null && process.isAlive()) {
            process.destroy();
            if (!process.waitFor(20, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
    }

    /**
     * The packaged trainer, merger and serving ({@code <service>/target/quarkus-app/quarkus-run.jar} of the
     * repository) by service name; the test is skipped, saying why, where one is missing.
     */
    public static Map<String, Path> packagedServices(Path repository) {
        Map<String, Path> jars = new HashMap<>();
        for (String service : List.of("trainer", "merger", "serving")) {
            Path jar = repository.resolve(service).resolve("target/quarkus-app/quarkus-run.jar");
            Assumptions.assumeTrue(Files.isRegularFile(jar),
                    "skipped: " + jar + " is missing (package trainer, merger and serving first)");
            jars.put(service, jar);
        }
        return jars;
    }

    /** Deletes a previous run's directory (the tests keep theirs under target/, for the services' logs). */
    public static void deleteTree(Path root) throws IOException {
        if (Files.exists(root)) {
            try (var paths = Files.walk(root)) {
                for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(path);
                }
            }
        }
    }

    /** A port nothing listens on now (bound and released). */
    public static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }
}
