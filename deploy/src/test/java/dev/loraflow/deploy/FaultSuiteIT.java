package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.broker.KafkaBrokerExtension;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.broker.TopicReader;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The platform under faults, as separate processes on a real broker: the packaged trainer, merger and
 * server, each SIGKILLed at seeded random points and started again, the broker stopped for 60 s mid-job, the
 * store's disk full for a while, and a poison record on every topic. Jobs trained through all of it must
 * end with the bytes of the same jobs trained undisturbed; every batch is applied, skipped as a duplicate or
 * dead-lettered with its reason; no service's loop is dead at the end; and the server never serves a model
 * whose verification did not pass. Prints one line per fault, which docs/reliability.md tabulates.
 */
class FaultSuiteIT {

    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path ROOT = Path.of(System.getProperty("loraflow.root", "..")).toAbsolutePath().normalize();
    private static final long SEED = Long.getLong("loraflow.faults.seed", 15);
    private static final int VOCAB = 300;
    private static final int STEPS = 24;
    private static final int EXAMPLES_PER_STEP = 4;
    private static final String BASE = "tiny-gpt2";
    private static final String JOBS = "loraflow.training.jobs";
    private static final String BATCHES = "loraflow.training.batches";
    private static final String CHECKPOINTS = "loraflow.adapter.checkpoints";
    private static final String TRAINING_DEAD_LETTERS = "loraflow.training.dead-letters";
    private static final String MERGED = "loraflow.models.merged";
    private static final String MERGE_FAILURES = "loraflow.models.merge-failures";
    private static final String MERGE_DEAD_LETTERS = "loraflow.models.dead-letters";
    /** The followed model, and the version a forged, unverified event claims for it. */
    private static final String SERVED = "fault-0";
    private static final long FORGED_VERSION = 999_999;

    /** Kept after the run (under target/), so the services' logs can be read when it fails. */
    private final Path home = Path.of("target/fault-suite").toAbsolutePath();
    private final List<ServiceProcess> services = new ArrayList<>();
    private final List<String> report = new ArrayList<>();
    private Path tmpfs;
    private long started;

    @AfterEach
    void stop() throws Exception {
        for (ServiceProcess service : services) {
            service.close();
        }
        if (tmpfs != null) {
            new ProcessBuilder("umount", "-l", tmpfs.toString()).inheritIO().start().waitFor();
            tmpfs = null;
        }
    }

    @Test
    void nothingIsLostAndNothingUnverifiedIsServedWhateverFails() throws Exception {
        Map<String, Path> jars = ServiceProcess.packagedServices(ROOT);
        started = System.nanoTime();
        Random random = new Random(SEED);
        deleteTree(home);
        Path logs = Files.createDirectories(home.resolve("logs"));
        Path models = Files.createDirectories(home.resolve("models"));
        RandomModel.write(new Gpt2Config(VOCAB, 32, 32, 2, 4, 64, 1e-5), 5, models.resolve(BASE));
        Path store = Files.createDirectories(home.resolve("store"));
        DiskFull disk = DiskFull.on(store, this);
        Map<String, String> common = Map.of("KAFKA_BOOTSTRAP_SERVERS", KAFKA.broker().bootstrapServers(),
                "LORAFLOW_MODELS_ROOT", models.toString(), "LORAFLOW_STORE_ROOT", store.toString());
        ServiceProcess trainer = service("trainer", jars, common, Map.of("LORAFLOW_TRAINER_SESSION_TIMEOUT", "6s",
                "LORAFLOW_TRAINER_UNKNOWN_JOB_GRACE", "120s"), logs);
        ServiceProcess merger = service("merger", jars, common,
                Map.of("LORAFLOW_MERGER_WORK_DIR", home.resolve("merger-work").toString()), logs);
        ServiceProcess serving = service("serving", jars, common, Map.of("LORAFLOW_SERVING_FOLLOW_MODELS", "true",
                "LORAFLOW_SERVING_FOLLOW_MODEL_NAMES", SERVED,
                "QUARKUS_GRPC_SERVER_PORT", Integer.toString(ServiceProcess.freePort())), logs);
        trainer.awaitOk("/q/health/ready", Duration.ofSeconds(120));
        merger.awaitOk("/q/health/ready", Duration.ofSeconds(120));
        serving.awaitOk("/q/health/live", Duration.ofSeconds(120));
        ServedModelWatch watch = new ServedModelWatch(serving);
        watch.start();

        try (KafkaProducer<byte[], byte[]> producer = producer()) {
            // The undisturbed runs: the same jobs under other ids, before any fault.
            Map<String, List<Example>> data = new LinkedHashMap<>();
            for (int i = 0; i < 2; i++) {
                data.put("fault-" + i, examples(STEPS * EXAMPLES_PER_STEP, SEED * 100 + i));
                submit(producer, "undisturbed-" + i, data.get("fault-" + i));
            }
            awaitFinalCheckpoints(Set.of("undisturbed-0", "undisturbed-1"), Duration.ofMinutes(2));
            // SIGKILL the merger at a random point of its merges of the undisturbed jobs' final checkpoints.
            Thread.sleep(random.nextInt(2000));
            merger.kill();
            merger.start();
            fault("merger SIGKILL during the undisturbed jobs' merges, restarted");

            // A poison record on every topic.
            send(producer, JOBS, "poison", "{not json");
            send(producer, BATCHES, "fault-0", "{not json");
            send(producer, BATCHES, "fault-1", new String(TrainingBatch.encode("fault-1", 10_000,
                    examples(2, SEED)), StandardCharsets.UTF_8));
            send(producer, CHECKPOINTS, "a/b", checkpointOf("a/b"));
            send(producer, CHECKPOINTS, null, "{not json");
            send(producer, MERGED, null, "{not json");

            // The jobs under faults, their batches streamed while the services die and come back.
            AtomicReference<Exception> streamFailure = new AtomicReference<>();
            AtomicInteger sent = new AtomicInteger();
            int total = data.values().stream().mapToInt(examples -> batches("x", examples).size()).sum();
            // The stream runs ahead only as far as allowed, so that every fault below lands mid-job.
            AtomicInteger allowed = new AtomicInteger(total / 3);
            Thread stream = Thread.ofPlatform().name("batches").start(() -> {
                try {
                    for (String job : data.keySet()) {
                        send(producer, JOBS, job, jobJson(job));
                    }
                    List<List<byte[]>> batches = new ArrayList<>();
                    for (Map.Entry<String, List<Example>> job : data.entrySet()) {
                        batches.add(batches(job.getKey(), job.getValue()));
                    }
                    for (int i = 0; batches.stream().anyMatch(list -> !list.isEmpty()); i++) {
                        List<byte[]> next = batches.get(i % batches.size());
                        while (sent.get() >= allowed.get()) {
                            Thread.sleep(100);
                        }
                        if (!next.isEmpty()) {
                            String job = "fault-" + (i % batches.size());
                            producer.send(new ProducerRecord<>(BATCHES, job.getBytes(StandardCharsets.UTF_8),
                                    next.removeFirst())).get();
                            sent.incrementAndGet();
                            Thread.sleep(200);
                        }
                    }
                } catch (Exception e) {
                    streamFailure.set(e);
                }
            });

            Thread.sleep(1000 + random.nextInt(3000));
            trainer.kill();
            trainer.start();
            fault("trainer SIGKILL mid-job, restarted");
            Thread.sleep(1000 + random.nextInt(3000));
            serving.kill();
            serving.start();
            fault("serving SIGKILL, restarted");

            trainer.awaitOk("/q/health/ready", Duration.ofMinutes(2));
            long refusedBefore = occurrences(trainer, disk.symptom());
            disk.fill();
            allowed.set(total * 2 / 3);
            fault("store disk full (" + disk.how() + ")");
            // Full until the trainer has met it at a checkpoint, then a while longer.
            long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
            while (occurrences(trainer, disk.symptom()) == refusedBefore) {
                assertTrue(System.nanoTime() < deadline, "the trainer never met the full disk:\n" + trainer.tail());
                Thread.sleep(200);
            }
            Thread.sleep(2000 + random.nextInt(3000));
            disk.free();
            fault("store disk freed; the trainer had met it " + (occurrences(trainer, disk.symptom()) - refusedBefore)
                    + " times, paused, never failed");
            Thread.sleep(random.nextInt(3000));
            trainer.kill();
            trainer.start();
            fault("trainer SIGKILL mid-job again, restarted");

            trainer.awaitOk("/q/health/ready", Duration.ofMinutes(2));
            allowed.set(total);
            // The broker goes away with a sixth of the data still to come.
            while (sent.get() < total * 5 / 6 && stream.isAlive()) {
                Thread.sleep(100);
            }
            Thread.sleep(random.nextInt(2000));
            KAFKA.broker().stop();
            fault("broker stopped, " + sent.get() + " of " + total + " batches sent");
            Thread.sleep(60_000);
            KAFKA.broker().restart();
            fault("broker restarted after 60 s");
            stream.join(Duration.ofMinutes(3));
            assertFalse(stream.isAlive(), "every batch was sent");
            assertEquals(null, streamFailure.get(), "every batch was sent");

            Map<String, CheckpointEvent> finals = awaitFinalCheckpoints(data.keySet(), Duration.ofMinutes(3));
            Map<String, CheckpointEvent> undisturbed = awaitFinalCheckpoints(Set.of("undisturbed-0", "undisturbed-1"),
                    Duration.ofSeconds(30));
            LocalArtifactStore artifacts = new LocalArtifactStore(store);
            for (String job : data.keySet()) {
                CheckpointEvent last = finals.get(job);
                CheckpointEvent reference = undisturbed.get(job.replace("fault-", "undisturbed-"));
                assertArrayEquals(adapter(artifacts, reference), adapter(artifacts, last),
                        job + " ends with the undisturbed run's bytes");
                CheckpointEvent.Counts counts = last.counts();
                assertEquals(counts.received(), counts.applied() + counts.skippedDuplicate() + counts.deadLettered(),
                        job + " " + counts);
                assertEquals(reference.counts().applied(), counts.applied(), job + ": every batch applied once");
                report.add(job + ": adapter identical; received " + counts.received() + " = applied " + counts.applied()
                        + " + duplicates " + counts.skippedDuplicate() + " + dead-lettered " + counts.deadLettered());
            }

            // Every poison record set aside with its reason.
            List<JsonNode> letters = readUntil(TRAINING_DEAD_LETTERS, seen -> reasons(seen).contains("not valid JSON")
                    && seen.stream().anyMatch(l -> l.path("seq").asLong() == 10_000), Duration.ofMinutes(1));
            assertTrue(letters.stream().anyMatch(l -> l.path("source").path("topic").asText().equals(JOBS)),
                    "the poison job definition: " + reasons(letters));
            assertTrue(letters.stream().anyMatch(l -> l.path("job_id").asText().equals("fault-0")
                    && l.path("reason").asText().contains("not valid JSON")), reasons(letters));
            assertTrue(letters.stream().anyMatch(l -> l.path("seq").asLong() == 10_000
                    && l.path("reason").asText().contains("ended")), reasons(letters));
            List<JsonNode> mergerLetters = readUntil(MERGE_DEAD_LETTERS, seen -> reasons(seen).contains("job_id \"a/b\"")
                    && reasons(seen).contains("not valid JSON"), Duration.ofMinutes(1));
            report.add("dead letters: trainer " + letters.size() + ", merger " + mergerLetters.size());

            // Each job merged, verified, and nothing announced as failed for a transient reason.
            List<JsonNode> merged = readUntil(MERGED, seen -> data.keySet().stream().allMatch(job -> seen.stream()
                    .anyMatch(e -> e.path("model").asText().equals(job) && e.path("model_version").asLong() == STEPS)),
                    Duration.ofMinutes(3));
            Set<String> verified = new HashSet<>();
            for (JsonNode event : merged) {
                if (event.path("verification").path("passed").asBoolean()) {
                    verified.add(event.path("onnx").path("file_sha256").asText());
                }
            }
            List<JsonNode> failures = readFor(MERGE_FAILURES, Duration.ofSeconds(2));
            assertTrue(failures.stream().noneMatch(f -> data.containsKey(f.path("model").asText())), failures.toString());

            // The forged, unverified announcement of the followed model: never served, and it does not block
            // the real versions.
            MergedModelEvent real = MergedModelEvent.parse(JSON.writeValueAsBytes(merged.stream()
                    .filter(e -> e.path("model").asText().equals("undisturbed-0")).findFirst().orElseThrow()));
            MergedModelEvent forged = new MergedModelEvent(SERVED, FORGED_VERSION, real.onnxUri(), real.onnxSha256(),
                    real.onnxFile(), real.onnxFileSha256(), real.opset(), real.mergedUri(), real.mergedSha256(),
                    real.dtype(), new MergedModelEvent.Verification(false, 1.0, 1e-4, 1, false), real.lineage(),
                    real.timings());
            producer.send(new ProducerRecord<>(MERGED, SERVED.getBytes(StandardCharsets.UTF_8), forged.encode())).get();
            serving.kill();
            serving.start();
            fault("serving SIGKILL after a forged unverified event, restarted");
            serving.awaitOk("/q/health/ready", Duration.ofMinutes(2));
            awaitServedVersion(serving, STEPS, Duration.ofMinutes(1));

            // No loop is dead.
            for (ServiceProcess service : List.of(trainer, merger, serving)) {
                service.awaitOk("/q/health/live", Duration.ofMinutes(1));
                service.awaitOk("/q/health/ready", Duration.ofMinutes(1));
            }
            watch.stop();
            assertFalse(watch.servedVersions.contains(FORGED_VERSION), "the unverified model was served: " + watch.servedVersions);
            for (String sha : watch.servedSha256s) {
                assertTrue(verified.contains(sha), "served " + sha + ", not a verified model " + verified);
            }
            report.add("served: versions " + watch.servedVersions + " of " + SERVED + ", all verified; "
                    + watch.samples + " samples");
        } finally {
            watch.stop();
            report.add("whole run " + (System.nanoTime() - started) / 1_000_000_000 + " s, seed " + SEED);
            report.forEach(line -> System.out.println("fault-suite: " + line));
            Files.write(home.resolve("report.txt"), report);
        }
    }

    private ServiceProcess service(String name, Map<String, Path> jars, Map<String, String> common,
                                   Map<String, String> extra, Path logs) throws IOException {
        Map<String, String> environment = new HashMap<>(common);
        environment.putAll(extra);
        // Each service signs in as its own Kafka user, as ./loraflow up starts it.
        environment.put("LORAFLOW_KAFKA_USERNAME", name);
        environment.put("LORAFLOW_KAFKA_PASSWORD", KAFKA.broker().password(name));
        ServiceProcess service = new ServiceProcess(name, jars.get(name), environment, logs).start();
        services.add(service);
        return service;
    }

    private static long occurrences(ServiceProcess service, String text) throws IOException {
        String log = Files.exists(service.log()) ? Files.readString(service.log()) : "";
        long count = 0;
        for (int at = log.indexOf(text); at >= 0; at = log.indexOf(text, at + 1)) {
            count++;
        }
        return count;
    }

    private void fault(String what) {
        report.add(String.format("%6.1f s  %s", (System.nanoTime() - started) / 1e9, what));
    }

    /**
     * The store's disk full: a tmpfs of its own filled to the last byte when this test may mount one (root),
     * else the store's staging directory made unusable (a file in its place), which fails every write alike.
     */
    private static final class DiskFull {
        private final Path store;
        private final boolean tmpfs;
        private Path filler;
        private Path aside;

        private DiskFull(Path store, boolean tmpfs) {
            this.store = store;
            this.tmpfs = tmpfs;
        }

        static DiskFull on(Path store, FaultSuiteIT test) throws Exception {
            Process mount = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", store.toString())
                    .redirectErrorStream(true).start();
            boolean mounted = mount.waitFor() == 0;
            if (mounted) {
                test.tmpfs = store;
            }
            return new DiskFull(store, mounted);
        }

        /** What the trainer logs when it meets the fault. */
        String symptom() {
            return tmpfs ? "No space left on device" : "Not a directory";
        }

        String how() {
            return tmpfs ? "a 64 MiB tmpfs filled: No space left on device" : "its staging directory unusable";
        }

        void fill() throws IOException {
            if (!tmpfs) {
                aside = store.resolveSibling("store-tmp-aside");
                Files.move(store.resolve("tmp"), aside);
                Files.writeString(store.resolve("tmp"), "not a directory");
                return;
            }
            filler = store.resolve("filler");
            byte[] block = new byte[1 << 16];
            try (OutputStream out = Files.newOutputStream(filler)) {
                while (true) {
                    out.write(block);
                }
            } catch (IOException full) {
                assertTrue(String.valueOf(full.getMessage()).contains("No space left"), full.toString());
            }
        }

        void free() throws IOException {
            if (!tmpfs) {
                Files.delete(store.resolve("tmp"));
                Files.move(aside, store.resolve("tmp"));
                return;
            }
            Files.delete(filler);
        }
    }

    /** Samples what the server serves, every 200 ms, from its readiness and its metrics. */
    private static final class ServedModelWatch {
        private static final Pattern VERSION = Pattern.compile("loraflow_serving_model_version\\{[^}]*} ([0-9.E]+)");
        final Set<Long> servedVersions = ConcurrentHashMap.newKeySet();
        final Set<String> servedSha256s = ConcurrentHashMap.newKeySet();
        private final ServiceProcess serving;
        private final AtomicReference<Thread> thread = new AtomicReference<>();
        volatile int samples;

        ServedModelWatch(ServiceProcess serving) {
            this.serving = serving;
        }

        void start() {
            thread.set(Thread.ofPlatform().daemon().name("served-model-watch").start(() -> {
                while (!Thread.currentThread().isInterrupted()) {
                    try {
                        HttpResponse<String> ready = serving.get("/q/health/ready");
                        if (ready != null && ready.statusCode() == 200) {
                            for (JsonNode check : JSON.readTree(ready.body()).path("checks")) {
                                if (check.path("name").asText().equals("model")) {
                                    servedSha256s.add(check.path("data").path("sha256").asText());
                                }
                            }
                            HttpResponse<String> metrics = serving.get("/q/metrics");
                            Matcher version = metrics == null ? null : VERSION.matcher(metrics.body());
                            if (version != null && version.find() && !version.group(1).equals("NaN")) {
                                servedVersions.add((long) Double.parseDouble(version.group(1)));
                            }
                            samples++;
                        }
                        Thread.sleep(200);
                    } catch (InterruptedException e) {
                        return;
                    } catch (IOException | RuntimeException e) {
                        // a restart in between: sample again
                    }
                }
            }));
        }

        void stop() throws InterruptedException {
            Thread running = thread.getAndSet(null);
            if (running != null) {
                running.interrupt();
                running.join(5000);
            }
        }
    }

    private static void awaitServedVersion(ServiceProcess serving, long version, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        Pattern served = Pattern.compile("loraflow_serving_model_version\\{[^}]*} " + version + "\\.0\\b");
        while (true) {
            HttpResponse<String> metrics = serving.get("/q/metrics");
            if (metrics != null && served.matcher(metrics.body()).find()) {
                return;
            }
            assertTrue(System.nanoTime() < deadline, "serving never served version " + version + ":\n" + serving.tail());
            Thread.sleep(250);
        }
    }

    private static KafkaProducer<byte[], byte[]> producer() {
        // The test acts as the operator (the super user): it plants poison on every topic, announcements too.
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        // A producer waits out the broker's outage as the platform's own clients do.
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 180_000);
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 300_000);
        config.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        return new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer());
    }

    private static void send(KafkaProducer<byte[], byte[]> producer, String topic, String key, String value)
            throws Exception {
        producer.send(new ProducerRecord<>(topic, key == null ? null : key.getBytes(StandardCharsets.UTF_8),
                value.getBytes(StandardCharsets.UTF_8))).get();
    }

    private static void submit(KafkaProducer<byte[], byte[]> producer, String job, List<Example> examples) throws Exception {
        send(producer, JOBS, job, jobJson(job));
        for (byte[] batch : batches(job, examples)) {
            producer.send(new ProducerRecord<>(BATCHES, job.getBytes(StandardCharsets.UTF_8), batch)).get();
        }
    }

    private static String jobJson(String job) {
        return TrainingTraffic.jobJson(job, BASE, STEPS, 4);
    }

    private static List<byte[]> batches(String job, List<Example> examples) {
        return TrainingTraffic.batches(job, examples);
    }

    private static List<Example> examples(int count, long seed) {
        return TrainingTraffic.examples(count, seed, VOCAB);
    }

    /** A well-formed checkpoint event but for its job id, which is no job id. */
    private static String checkpointOf(String jobId) {
        return new String(new CheckpointEvent(jobId, 1, 1.0, true, "file:///nowhere/", "0".repeat(64), BASE,
                "0".repeat(64), JSON.createObjectNode().put("r", 4), 1, 0, 0, 1,
                new CheckpointEvent.Counts(1, 1, 0, 0)).encode(), StandardCharsets.UTF_8);
    }

    private static byte[] adapter(LocalArtifactStore store, CheckpointEvent event) throws IOException {
        return Files.readAllBytes(store.open(URI.create(event.adapterUri()), event.adapterSha256())
                .resolve("adapter_model.safetensors"));
    }

    private static Map<String, CheckpointEvent> awaitFinalCheckpoints(Set<String> jobs, Duration timeout) throws Exception {
        Map<String, CheckpointEvent> finals = new HashMap<>();
        readUntil(CHECKPOINTS, seen -> {
            for (JsonNode event : seen) {
                if (jobs.contains(event.path("job_id").asText()) && event.path("final").asBoolean()) {
                    try {
                        finals.putIfAbsent(event.path("job_id").asText(),
                                CheckpointEvent.parse(JSON.writeValueAsBytes(event)));
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
            }
            return finals.keySet().containsAll(jobs);
        }, timeout);
        return finals;
    }

    private static String reasons(List<JsonNode> letters) {
        StringBuilder reasons = new StringBuilder();
        letters.forEach(letter -> reasons.append(letter.path("reason").asText()).append('\n'));
        return reasons.toString();
    }

    /** Reads {@code topic} from its start until {@code done} holds of the JSON records read (others skipped). */
    private static List<JsonNode> readUntil(String topic, Predicate<List<JsonNode>> done, Duration timeout) throws Exception {
        return TopicReader.readUntil(KAFKA.broker().clientProperties(PlatformUsers.ADMIN), topic, FaultSuiteIT::json, done,
                timeout);
    }

    /** A record's JSON, or null for the poison records this test sent. */
    private static JsonNode json(byte[] value) {
        try {
            return JSON.readTree(value);
        } catch (IOException poison) {
            return null;
        }
    }

    private static List<JsonNode> readFor(String topic, Duration duration) throws Exception {
        return TopicReader.readFor(KAFKA.broker().clientProperties(PlatformUsers.ADMIN), topic, FaultSuiteIT::json, duration);
    }

    private static void deleteTree(Path root) throws IOException, InterruptedException {
        if (Files.exists(root)) {
            // A mount a killed run left behind.
            new ProcessBuilder("umount", "-l", root.resolve("store").toString()).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor();
        }
        ServiceProcess.deleteTree(root);
    }
}
