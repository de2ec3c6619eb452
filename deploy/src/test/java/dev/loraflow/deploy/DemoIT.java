package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.loraflow.broker.KafkaBrokerExtension;
import dev.loraflow.broker.PlatformUsers;
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
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The demo end to end, as the README's command runs it (a 4-layer, 128-wide GPT-2 trained 300 steps): the
 * real broker, the packaged trainer, merger and server as separate processes, and the packaged demo driver
 * against them. It must pass every stage, the adapter must have learnt the task (held-out accuracy), and
 * the server's answers must be token for token the greedy answers of the merged model run in Java.
 */
class DemoIT {

    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension();
    private static final String API_KEY = "demo-it-key";
    private static final Path ROOT = Path.of(System.getProperty("loraflow.root", "..")).toAbsolutePath().normalize();

    /** Kept after the run (under target/), so the services' logs can be read when it fails. */
    private final Path home = Path.of("target/demo-it").toAbsolutePath();
    private final List<Process> services = new ArrayList<>();
    private final HttpClient http = HttpClient.newHttpClient();

    @AfterEach
    void stopServices() throws InterruptedException {
        for (Process service : services) {
            service.destroy();
        }
        for (Process service : services) {
            if (!service.waitFor(20, TimeUnit.SECONDS)) {
                service.destroyForcibly();
            }
        }
    }

    @Test
    void theDemoPassesEveryStageAndServesWhatTheMergedModelComputes() throws Exception {
        Path demoJar = ROOT.resolve("demo/target/loraflow-demo.jar");
        Map<String, Path> jars = Map.of("trainer", ROOT.resolve("trainer/target/quarkus-app/quarkus-run.jar"),
                "merger", ROOT.resolve("merger/target/quarkus-app/quarkus-run.jar"),
                "serving", ROOT.resolve("serving/target/quarkus-app/quarkus-run.jar"));
        for (Path jar : List.of(demoJar, jars.get("trainer"), jars.get("merger"), jars.get("serving"))) {
            assumeTrue(Files.isRegularFile(jar), "skipped: " + jar + " is missing (package trainer, merger, serving and demo first)");
        }
        deleteTree(home);
        Path models = Files.createDirectories(home.resolve("models"));
        Path store = Files.createDirectories(home.resolve("artifacts"));
        Path logs = Files.createDirectories(home.resolve("logs"));
        int trainerPort = freePort();
        int mergerPort = freePort();
        int servingPort = freePort();
        Map<String, String> common = Map.of("KAFKA_BOOTSTRAP_SERVERS", KAFKA.broker().bootstrapServers(),
                "LORAFLOW_MODELS_ROOT", models.toString(), "LORAFLOW_STORE_ROOT", store.toString(),
                "LORAFLOW_API_KEYS", API_KEY);
        start("trainer", jars.get("trainer"), trainerPort, common, kafkaUser(PlatformUsers.TRAINER), logs);
        start("merger", jars.get("merger"), mergerPort, common, with(kafkaUser(PlatformUsers.MERGER),
                "LORAFLOW_MERGER_WORK_DIR", home.resolve("merger-work").toString()), logs);
        // As ./loraflow up: the admin API reads from the state directory, where the demo puts its exports.
        start("serving", jars.get("serving"), servingPort, common, with(with(with(kafkaUser(PlatformUsers.SERVING),
                "LORAFLOW_SERVING_FOLLOW_MODELS", "true"), "LORAFLOW_SERVING_FOLLOW_MODEL_NAMES", "*"),
                "LORAFLOW_SERVING_ADMIN_ROOTS", home.toString()), logs);
        awaitUp(trainerPort, "/q/health/ready", logs.resolve("serving.log"));
        awaitUp(mergerPort, "/q/health/ready", logs.resolve("merger.log"));
        awaitUp(servingPort, "/q/health/live", logs.resolve("serving.log"));

        Path runEnv = home.resolve("run.env");
        Files.writeString(runEnv, """
                TRAINER_URL=http://127.0.0.1:%d
                MERGER_URL=http://127.0.0.1:%d
                SERVING_URL=http://127.0.0.1:%d
                BOOTSTRAP_SERVERS=%s
                KAFKA_USERNAME=producer
                KAFKA_PASSWORD=%s
                API_KEY=%s
                MODELS_ROOT=%s
                STORE_ROOT=%s
                LOGS=%s
                """.formatted(trainerPort, mergerPort, servingPort, KAFKA.broker().bootstrapServers(),
                KAFKA.broker().password(PlatformUsers.PRODUCER), API_KEY, models, store,
                logs));
        Path report = home.resolve("report/demo.html");
        Process demo = demo(demoJar, runEnv, report, "demo.out");
        String printed = Files.readString(home.resolve("demo.out"));
        assertEquals(0, demo.exitValue(), "the demo failed:\n" + printed);
        assertTrue(printed.contains("identical 100/100"), "served = merged model's Java answers:\n" + printed);
        Matcher accuracy = Pattern
                .compile("held-out accuracy: (\\d+) % \\(\\d+/100\\) before, (\\d+) % \\(\\d+/100\\) after").matcher(printed);
        assertTrue(accuracy.find(), "the accuracy line:\n" + printed);
        assertTrue(Integer.parseInt(accuracy.group(1)) <= 10 && Integer.parseInt(accuracy.group(2)) >= 90,
                "the base cannot do the task and the adapter learnt it: " + accuracy.group());
        for (String stage : List.of("base model", "serve the base", "answers before", "submit job", "stream data into Kafka",
                "training", "checkpoint", "merge, ONNX export, verify", "serve the merged model", "answers after",
                "served = merged model in Java")) {
            assertTrue(printed.contains("== " + stage), stage + " ran:\n" + printed);
        }
        assertTrue(Files.isRegularFile(report), "the report is written");
        String html = Files.readString(report);
        assertTrue(html.contains("<polyline") && html.contains("identical 100/100"), "the report shows the run");

        // A stage that fails ends the run, named, with the log to read, and the report still written.
        Path wrongKey = Files.writeString(home.resolve("wrong-key.env"),
                Files.readString(runEnv).replace("API_KEY=" + API_KEY, "API_KEY=not-the-key"));
        Path failedReport = home.resolve("report/failed.html");
        Process failed = demo(demoJar, wrongKey, failedReport, "failed.out");
        String failure = Files.readString(home.resolve("failed.out"));
        assertEquals(1, failed.exitValue(), failure);
        assertTrue(failure.contains("demo: stage 'serve the base' failed: POST /admin/models answered 401"), failure);
        assertTrue(failure.contains("demo: see " + logs.resolve("serving.log")), failure);
        assertTrue(Files.readString(failedReport).contains("Failed: stage 'serve the base' failed"), "the report says so");
    }

    private Process demo(Path jar, Path runEnv, Path report, String output) throws Exception {
        Process demo = new ProcessBuilder(java(), "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-Xss4m", "-Djava.io.tmpdir=" + System.getProperty("java.io.tmpdir"), "-jar", jar.toString(), "--env", runEnv.toString(),
                "--report", report.toString())
                .redirectErrorStream(true).redirectOutput(home.resolve(output).toFile()).start();
        if (!demo.waitFor(4, TimeUnit.MINUTES)) {
            demo.destroyForcibly();
            throw new AssertionError("the demo did not finish in 4 minutes:\n" + Files.readString(home.resolve(output)));
        }
        return demo;
    }

    private void start(String name, Path jar, int port, Map<String, String> common, Map<String, String> extra, Path logs)
            throws IOException {
        ProcessBuilder builder = new ProcessBuilder(java(), "--add-modules", "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-Xss4m", "-Xmx768m", "-Djava.io.tmpdir=" + System.getProperty("java.io.tmpdir"), "-jar",
                jar.toString());
        builder.environment().putAll(common);
        builder.environment().putAll(extra);
        builder.environment().put("QUARKUS_HTTP_PORT", Integer.toString(port));
        builder.redirectErrorStream(true).redirectOutput(logs.resolve(name + ".log").toFile());
        services.add(builder.start());
    }

    private void awaitUp(int port, String path, Path log) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
        while (System.nanoTime() < deadline) {
            try {
                HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                        .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
                if (response.statusCode() == 200) {
                    return;
                }
            } catch (IOException notYet) {
                // Still starting.
            }
            Thread.sleep(500);
        }
        throw new AssertionError("not up on " + port + path + " within 90 s:\n" + Files.readString(log));
    }

    private static void deleteTree(Path root) throws IOException {
        if (Files.exists(root)) {
            try (var paths = Files.walk(root)) {
                for (Path path : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.delete(path);
                }
            }
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static String java() {
        return ProcessHandle.current().info().command().orElse("java");
    }

    /** A service's Kafka user, as ./loraflow up passes it. */
    private static Map<String, String> kafkaUser(String user) {
        return Map.of("LORAFLOW_KAFKA_USERNAME", user, "LORAFLOW_KAFKA_PASSWORD", KAFKA.broker().password(user));
    }

    private static Map<String, String> with(Map<String, String> environment, String name, String value) {
        Map<String, String> more = new HashMap<>(environment);
        more.put(name, value);
        return more;
    }

}
