package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.data.Example;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import java.io.File;
import java.io.IOException;
import java.io.Reader;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./loraflow up --detach}, {@code down} and {@code serve} as a user runs them, on the jars the build
 * packaged: the broker and the three services come up healthy, a second up refuses, down leaves no
 * process and no run.env, and so does Ctrl-C on an up in the foreground; serve answers as generate does
 * on the same exported model. Skipped, saying
 * why, where the jars have not been packaged (./mvnw test alone).
 */
class LocalPlatformTest {

    private static final Path REPOSITORY = Path.of("").toAbsolutePath().getParent();
    private static final List<Path> JARS = List.of(
            REPOSITORY.resolve("broker/target/loraflow-broker.jar"),
            REPOSITORY.resolve("trainer/target/quarkus-app/quarkus-run.jar"),
            REPOSITORY.resolve("merger/target/quarkus-app/quarkus-run.jar"),
            REPOSITORY.resolve("serving/target/quarkus-app/quarkus-run.jar"));
    private static final Duration COMMAND_TIMEOUT = Duration.ofMinutes(6);
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path home;

    @AfterEach
    void downEvenWhenTheTestFailed() throws Exception {
        if (Files.exists(home.resolve("run.env"))) {
            loraflow("down");
        }
    }

    @Test
    void upStartsFourHealthyProcessesRefusesASecondUpAndDownStopsThemAll() throws Exception {
        for (Path jar : JARS) {
            assumeTrue(Files.isRegularFile(jar), jar + " is not built, so ./loraflow up is not tested; "
                    + "it runs in ./mvnw verify (./loraflow test), after the services are packaged");
        }

        Result up = loraflow("up", "--detach");
        assertEquals(0, up.exitCode(), up.output());
        Map<String, String> run = runEnv();
        assertEquals("up", run.get("STATUS"));
        for (String directory : List.of("MODELS_ROOT", "STORE_ROOT", "MERGER_WORK_DIR", "LOGS")) {
            assertTrue(Path.of(run.get(directory)).startsWith(home), directory + " outside LORAFLOW_HOME: " + run);
        }
        for (String service : List.of("broker", "trainer", "merger", "serving")) {
            assertTrue(Files.size(Path.of(run.get("LOGS"), service + ".log")) > 0, service + " wrote no log");
        }

        Properties producer = producerSettings(run);
        try (Admin admin = Admin.create(producer)) {
            assertEquals(1, admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).size());
        }
        assertEquals(200, status(run.get("TRAINER_URL") + "/q/health/ready"));
        dataProducerPublishesAJobAndABatchTheTrainerTakesAndNothingElse(run, producer);
        assertEquals(200, status(run.get("MERGER_URL") + "/q/health/ready"));
        assertEquals(200, status(run.get("SERVING_URL") + "/q/health/live"));
        // No model yet: serving is alive but not ready, until the merger announces one.
        assertEquals(503, status(run.get("SERVING_URL") + "/q/health/ready"));
        String grpc = run.get("SERVING_GRPC");
        assertTrue(grpc != null && grpc.matches("127\\.0\\.0\\.1:[0-9]+"), "serving's gRPC address: " + run);
        try (Socket socket = new Socket("127.0.0.1", Integer.parseInt(grpc.substring(grpc.indexOf(':') + 1)))) {
            assertTrue(socket.isConnected(), "serving's gRPC server listens on " + grpc);
        }

        List<ProcessHandle> processes = new ArrayList<>();
        for (String service : List.of("BROKER", "TRAINER", "MERGER", "SERVING")) {
            ProcessHandle process = ProcessHandle.of(Long.parseLong(run.get(service + "_PID")))
                    .orElseThrow(() -> new AssertionError(service + " is not running: " + run));
            processes.add(process);
            process.descendants().forEach(processes::add);
        }
        assertTrue(processes.size() > 4, "the broker runs Kafka in a child JVM: " + processes);

        Result second = loraflow("up", "--detach");
        assertEquals(1, second.exitCode(), second.output());
        assertTrue(second.output().contains("loraflow is already up (pids " + run.get("BROKER_PID")), second.output());
        assertEquals(run, runEnv(), "a refused up must leave run.env as it was");

        Result down = loraflow("down");
        assertEquals(0, down.exitCode(), down.output());
        assertFalse(Files.exists(home.resolve("run.env")), "run.env left behind");
        assertFalse(Files.exists(Path.of(run.get("KAFKA_CLIENT_CONFIG"))), "the producer's client settings left behind");
        assertFalse(Files.exists(Path.of(run.get("KCAT_CONFIG"))), "the producer's kcat settings left behind");
        for (ProcessHandle process : processes) {
            assertFalse(running(process), "still running after down: " + process.pid() + " "
                    + process.info().commandLine().orElse(""));
        }
        for (String service : List.of("serving", "merger", "trainer", "broker")) {
            assertTrue(down.output().contains("stopped " + service + " (pid "), down.output());
        }

        Result again = loraflow("down");
        assertEquals(0, again.exitCode(), again.output());
        assertTrue(again.output().contains("nothing is running"), again.output());
    }

    /** --store s3: a local S3 API server first, the services on its bucket, nothing under artifacts/; down stops it last. */
    @Test
    void upWithTheS3StoreRunsAnS3ServerTheServicesUseAndDownStopsIt() throws Exception {
        Path s3Jar = REPOSITORY.resolve("s3server/target/loraflow-s3server.jar");
        for (Path jar : Stream.concat(JARS.stream(), Stream.of(s3Jar)).toList()) {
            assumeTrue(Files.isRegularFile(jar), jar + " is not built, so ./loraflow up --store s3 is not tested; "
                    + "it runs in ./mvnw verify (./loraflow test), after the services are packaged");
        }
        Result up = loraflow("up", "--detach", "--store", "s3");
        assertEquals(0, up.exitCode(), up.output());
        Map<String, String> run = runEnv();
        assertEquals("s3://loraflow/artifacts", run.get("STORE_URI"));
        assertTrue(run.get("AWS_ENDPOINT_URL").matches("http://127\\.0\\.0\\.1:[0-9]+"), run.toString());
        ProcessHandle s3server = ProcessHandle.of(Long.parseLong(run.get("S3SERVER_PID"))).orElseThrow();
        assertTrue(up.output().contains(run.get("AWS_ENDPOINT_URL")), up.output());
        assertEquals(200, status(run.get("TRAINER_URL") + "/q/health/ready"));
        assertEquals(200, status(run.get("MERGER_URL") + "/q/health/ready"));
        assertTrue(Files.readString(Path.of(run.get("LOGS"), "serving.log")).contains("(store s3://loraflow/artifacts"),
                "serving follows the models from another store");
        assertTrue(Files.isDirectory(home.resolve("s3/loraflow")), "the bucket is a directory under the state");
        assertFalse(Files.exists(Path.of(run.get("STORE_ROOT"))), "nothing is written to the local store");

        // The bucket answers as the services reach it: with run.env's endpoint and key.
        System.setProperty("aws.accessKeyId", run.get("AWS_ACCESS_KEY_ID"));
        System.setProperty("aws.secretAccessKey", run.get("AWS_SECRET_ACCESS_KEY"));
        try {
            ArtifactStore store = ArtifactStores.open(run.get("STORE_URI") + "?endpoint=" + run.get("AWS_ENDPOINT_URL"));
            Path directory = Files.createDirectories(home.resolve("probe"));
            Files.writeString(directory.resolve("hello.txt"), "hello");
            ArtifactStore.Artifact artifact = store.putDirectory(directory);
            assertEquals("hello", Files.readString(store.open(artifact.uri(), artifact.sha256()).resolve("hello.txt")));
        } finally {
            System.clearProperty("aws.accessKeyId");
            System.clearProperty("aws.secretAccessKey");
        }

        Result down = loraflow("down");
        assertEquals(0, down.exitCode(), down.output());
        assertTrue(down.output().contains("stopped s3server (pid " + s3server.pid() + ")"), down.output());
        assertFalse(running(s3server), "the S3 server runs on after down");
    }

    @Test
    void ctrlCOnAForegroundUpStopsEverythingAndLeavesNoRunEnv() throws Exception {
        for (Path jar : JARS) {
            assumeTrue(Files.isRegularFile(jar), jar + " is not built, so ./loraflow up is not tested; "
                    + "it runs in ./mvnw verify (./loraflow test), after the services are packaged");
        }
        Path output = Files.createTempFile("loraflow-up-", ".out");
        Process up = launcher("up").redirectOutput(output.toFile()).start();
        List<ProcessHandle> processes = new ArrayList<>();
        try {
            long deadline = System.nanoTime() + COMMAND_TIMEOUT.toNanos();
            while (!Files.readString(output).contains("Ctrl-C (or ./loraflow down) stops everything")) {
                assertTrue(up.isAlive() && System.nanoTime() < deadline, "up did not come up:\n" + Files.readString(output));
                Thread.sleep(200);
            }
            Map<String, String> run = runEnv();
            for (String service : List.of("BROKER", "TRAINER", "MERGER", "SERVING")) {
                ProcessHandle process = ProcessHandle.of(Long.parseLong(run.get(service + "_PID"))).orElseThrow();
                processes.add(process);
                process.descendants().forEach(processes::add);
            }
            // What a terminal's Ctrl-C sends to the foreground command.
            assertEquals(0, new ProcessBuilder("kill", "-INT", Long.toString(up.pid())).start().waitFor());
            assertTrue(up.waitFor(2, TimeUnit.MINUTES), "up still running after Ctrl-C:\n" + Files.readString(output));
        } finally {
            if (up.isAlive()) {
                up.destroyForcibly();
            }
        }
        String printed = Files.readString(output);
        Files.delete(output);
        assertEquals(0, up.exitValue(), printed);
        assertFalse(Files.exists(home.resolve("run.env")), "run.env left behind:\n" + printed);
        for (ProcessHandle process : processes) {
            assertFalse(running(process), "still running after Ctrl-C: " + process.pid() + " "
                    + process.info().commandLine().orElse(""));
        }
        for (String service : List.of("serving", "merger", "trainer", "broker")) {
            assertTrue(printed.contains("stopped " + service + " (pid "), printed);
        }
    }

    @Test
    void serveAnswersWithTheTokensThatGenerateGivesOnTheSameExportedModel() throws Exception {
        Path cliJar = REPOSITORY.resolve("cli/target/loraflow-cli.jar");
        for (Path jar : List.of(cliJar, JARS.get(3))) {
            assumeTrue(Files.isRegularFile(jar), jar + " is not built, so ./loraflow serve is not tested; "
                    + "it runs in ./mvnw verify (./loraflow test), after the command line and serving are packaged");
        }
        Path base = home.resolve("base");
        Path onnx = home.resolve("exported/model.onnx");
        cli(cliJar, "init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "32", "--heads", "4", "--vocab", "257",
                "--context", "32", "--seed", "7", "--out", base.toString());
        cli(cliJar, "export-onnx", "--model", base.toString(), "--out", onnx.toString());
        JsonNode generated = JSON.readTree(cli(cliJar, "generate", "--model", onnx.toString(), "--prompt", "hello",
                "--max-new-tokens", "8").strip());

        Path output = Files.createTempFile("loraflow-serve-", ".out");
        Process serve = launcher("serve", "--model", onnx.getParent().toString(), "--port", "0", "--grpc-port", "0", "--name", "tiny")
                .redirectOutput(output.toFile()).start();
        try {
            int port = listeningPort(serve, output);
            HttpRequest completion = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\": \"tiny\", \"prompt\": \"hello\", \"max_tokens\": 8, \"temperature\": 0}"))
                    .timeout(Duration.ofSeconds(60)).build();
            HttpResponse<String> response = HTTP.send(completion, HttpResponse.BodyHandlers.ofString());
            assertEquals(200, response.statusCode(), response.body());
            JsonNode choice = JSON.readTree(response.body()).get("choices").get(0);
            assertEquals(generated.get("ids"), choice.get("token_ids"), response.body());
            assertEquals(generated.get("text"), choice.get("text"), response.body());
        } finally {
            serve.destroy();
            if (!serve.waitFor(30, TimeUnit.SECONDS)) {
                serve.destroyForcibly();
            }
            Files.delete(output);
        }
        assertEquals(143, serve.exitValue(), "serving stops on SIGTERM");
    }

    /** The port of Quarkus's "Listening on: http://127.0.0.1:PORT" line. */
    private static int listeningPort(Process process, Path output) throws IOException, InterruptedException {
        Pattern listening = Pattern.compile("Listening on: http://127\\.0\\.0\\.1:(\\d+)");
        long deadline = System.nanoTime() + COMMAND_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            Matcher matcher = listening.matcher(Files.readString(output));
            if (matcher.find()) {
                return Integer.parseInt(matcher.group(1));
            }
            if (!process.isAlive()) {
                throw new AssertionError("serve exited with " + process.exitValue() + ":\n" + Files.readString(output));
            }
            Thread.sleep(100);
        }
        throw new AssertionError("serve did not listen within " + COMMAND_TIMEOUT + ":\n" + Files.readString(output));
    }

    /** Runs the command-line jar as the launcher does; its stdout. */
    private static String cli(Path jar, String... arguments) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-jar", jar.toString()));
        command.addAll(List.of(arguments));
        Process process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(COMMAND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS), String.join(" ", arguments));
        assertEquals(0, process.exitValue(), String.join(" ", arguments) + ": " + out);
        return out;
    }

    /**
     * The data producer's settings as up wrote them: the Java client file, owner-only, the same as run.env's
     * KAFKA_* variables, and kcat's file with librdkafka's names for the same user and password.
     */
    private Properties producerSettings(Map<String, String> run) throws IOException {
        Path file = Path.of(run.get("KAFKA_CLIENT_CONFIG"));
        Path kcatFile = Path.of(run.get("KCAT_CONFIG"));
        for (Path written : List.of(file, kcatFile, home.resolve("run.env"))) {
            assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE),
                    Files.getPosixFilePermissions(written), written + " holds a password");
        }
        Properties settings = new Properties();
        try (Reader reader = Files.newBufferedReader(file)) {
            settings.load(reader);
        }
        assertEquals(run.get("BOOTSTRAP_SERVERS"), settings.getProperty("bootstrap.servers"));
        assertEquals("SASL_PLAINTEXT", settings.getProperty("security.protocol"));
        assertEquals("SCRAM-SHA-512", settings.getProperty("sasl.mechanism"));
        assertEquals("producer", run.get("KAFKA_USERNAME"));
        assertTrue(settings.getProperty("sasl.jaas.config").contains("username=\"producer\" password=\""
                + run.get("KAFKA_PASSWORD") + "\""), "the JAAS line names run.env's user and password");
        String kcat = Files.readString(kcatFile);
        assertTrue(kcat.contains("sasl.username=producer\n") && kcat.contains("sasl.password=" + run.get("KAFKA_PASSWORD") + "\n"),
                kcat);
        return settings;
    }

    /**
     * A job published with the Java client file and a batch with kcat -F (or, where kcat is not installed,
     * with the Java client, saying so): the trainer takes the batch, and as the job's base model does not
     * exist the job fails, which it reports. A client without credentials is refused, and so is the data
     * producer on a topic that only the services write.
     */
    private void dataProducerPublishesAJobAndABatchTheTrainerTakesAndNothingElse(Map<String, String> run,
            Properties producer) throws Exception {
        String jobId = "kafka-auth-probe";
        byte[] job = ("{\"schema\": \"loraflow.training.job\", \"version\": 1, \"job_id\": \"" + jobId + "\","
                + " \"base_model\": \"no-such-base\", \"lora\": {\"r\": 2}, \"optimizer\": {\"lr\": 0.01},"
                + " \"total_steps\": 4, \"checkpoint\": {\"every_steps\": 1}}").getBytes(StandardCharsets.UTF_8);
        byte[] batch = TrainingBatch.encode(jobId, 0, List.of(Example.unmasked(new int[] {1, 2, 3})));
        send(producer, "loraflow.training.jobs", jobId, job);
        Path kcat = Arrays.stream(System.getenv().getOrDefault("PATH", "").split(File.pathSeparator))
                .map(directory -> Path.of(directory, "kcat")).filter(Files::isExecutable).findFirst().orElse(null);
        if (kcat == null) {
            System.out.println("SKIPPED the kcat check of " + run.get("KCAT_CONFIG") + ": kcat is not installed;"
                    + " the batch is published with the Java client file instead");
            send(producer, "loraflow.training.batches", jobId, batch);
        } else {
            Path batchFile = Files.write(home.resolve("batch.json"), batch);
            Process kcatProcess = new ProcessBuilder(kcat.toString(), "-F", run.get("KCAT_CONFIG"), "-P",
                    "-t", "loraflow.training.batches", "-k", jobId, batchFile.toString())
                    .redirectErrorStream(true).start();
            String printed = new String(kcatProcess.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(kcatProcess.waitFor(60, TimeUnit.SECONDS), "kcat did not finish: " + printed);
            assertEquals(0, kcatProcess.exitValue(), "kcat -F " + run.get("KCAT_CONFIG") + ": " + printed);
        }
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        String state = "";
        while (!state.startsWith("FAILED")) {
            assertTrue(System.nanoTime() < deadline, "the trainer never took the batch of " + jobId + ": " + state);
            HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(URI.create(run.get("TRAINER_URL")
                    + "/jobs/" + jobId)).timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
            state = response.statusCode() == 200 ? JSON.readTree(response.body()).path("state").asText() : "";
            Thread.sleep(200);
        }
        assertTrue(state.contains("no-such-base"), state);

        Properties anonymous = new Properties();
        anonymous.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, run.get("BOOTSTRAP_SERVERS"));
        assertThrows(Exception.class, () -> send(anonymous, "loraflow.training.batches", jobId, batch),
                "a client without credentials");
        ExecutionException forged = assertThrows(ExecutionException.class,
                () -> send(producer, "loraflow.models.merged", jobId, job), "the data producer announcing a model");
        assertInstanceOf(TopicAuthorizationException.class, forged.getCause());
        forged = assertThrows(ExecutionException.class,
                () -> send(producer, "loraflow.adapter.checkpoints", jobId, job), "the data producer announcing a checkpoint");
        assertInstanceOf(TopicAuthorizationException.class, forged.getCause());
    }

    private static void send(Properties client, String topic, String key, byte[] value) throws Exception {
        Properties config = new Properties();
        config.putAll(client);
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 10_000);
        // Without idempotence the write itself, not a producer id, is what the broker authorises.
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            producer.send(new ProducerRecord<>(topic, key.getBytes(StandardCharsets.UTF_8), value)).get(30, TimeUnit.SECONDS);
        }
    }

    private record Result(int exitCode, String output) {}

    private Result loraflow(String... arguments) throws IOException, InterruptedException {
        Path output = Files.createTempFile("loraflow-", ".out");
        Process process = launcher(arguments).redirectOutput(output.toFile()).start();
        if (!process.waitFor(COMMAND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("./loraflow " + String.join(" ", arguments) + " did not finish within "
                    + COMMAND_TIMEOUT + ":\n" + Files.readString(output));
        }
        String text = Files.readString(output);
        Files.delete(output);
        return new Result(process.exitValue(), text);
    }

    private ProcessBuilder launcher(String... arguments) {
        List<String> command = new ArrayList<>(List.of(REPOSITORY.resolve("loraflow").toString()));
        command.addAll(List.of(arguments));
        ProcessBuilder builder = new ProcessBuilder(command)
                .directory(REPOSITORY.toFile())
                .redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        builder.environment().put("LORAFLOW_HOME", home.toString());
        builder.environment().put("JAVA_HOME", System.getProperty("java.home"));
        // The jars Maven just packaged: the launcher must not start a build of its own inside this one.
        builder.environment().put("LORAFLOW_NO_BUILD", "1");
        // The services' temporary files go where this test JVM's go (the module's target/tmp), not to /tmp.
        builder.environment().put("LORAFLOW_JAVA_OPTS", "-Djava.io.tmpdir=" + System.getProperty("java.io.tmpdir"));
        builder.environment().remove("LORAFLOW_API_KEYS");
        return builder;
    }

    /** run.env as KEY=VALUE lines; the values here (temporary paths, URLs, hex) need no shell unquoting. */
    private Map<String, String> runEnv() throws IOException {
        Map<String, String> values = new LinkedHashMap<>();
        for (String line : Files.readAllLines(home.resolve("run.env"), StandardCharsets.UTF_8)) {
            int equals = line.indexOf('=');
            assertTrue(equals > 0, "not KEY=VALUE in run.env: " + line);
            values.put(line.substring(0, equals), line.substring(equals + 1));
        }
        return values;
    }

    private static int status(String url) throws IOException, InterruptedException {
        HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).build();
        return HTTP.send(request, HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    /** Alive and not a zombie: an exited process whose parent has not reaped it yet has stopped all the same. */
    private static boolean running(ProcessHandle process) throws IOException {
        if (!process.isAlive() || !Files.isDirectory(Path.of("/proc"))) {
            return process.isAlive();
        }
        String stat;
        try {
            stat = Files.readString(Path.of("/proc", Long.toString(process.pid()), "stat"));
        } catch (NoSuchFileException reaped) {
            return false;
        }
        return stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
    }
}
