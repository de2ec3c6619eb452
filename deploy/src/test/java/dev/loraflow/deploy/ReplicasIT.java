package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.broker.KafkaBrokerExtension;
import dev.loraflow.broker.LocalKafkaBroker;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import dev.loraflow.s3server.LocalS3Server;
import dev.loraflow.s3server.S3ServerExtension;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Two replicas of every service — trainer, merger, serving, each the packaged service as a separate process —
 * on one broker, with the artifact store in S3 (a real S3 API server, S3Proxy), six jobs in flight, and one
 * replica of each service SIGKILLed while it holds work and started again, as Kubernetes would: a merger right
 * after it announced a model (its offset not committed yet; the next checkpoint often in hand), a trainer mid-job,
 * a serving replica while it follows the announcements. Then every job ends with the adapter bytes of the same
 * job trained locally by core's {@code Trainer}; every checkpoint is announced merged exactly once on
 * {@code loraflow.models.merged} (read committed); both serving replicas serve every job's newest model and
 * answer the same greedy requests alike; and nothing was written to a local artifact store. Prints one line per
 * fault with its time.
 */
class ReplicasIT {

    /** Three minutes to start, rather than one: the suite often runs beside other builds on two cores. */
    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension(LocalKafkaBroker.Options.defaults()
            .withStartTimeout(Duration.ofMinutes(3)));
    @RegisterExtension
    static final S3ServerExtension S3 = new S3ServerExtension();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final Path ROOT = Path.of(System.getProperty("loraflow.root", "..")).toAbsolutePath().normalize();
    private static final String API_KEY = "replicas-it-key";
    private static final String BASE = "tiny-gpt2";
    private static final int VOCAB = 300;
    private static final int JOBS = 6;
    private static final int STEPS = 6;
    private static final int CHECKPOINT_EVERY = 2;
    /** Batch 2 × gradient accumulation 2 (TrainingTraffic's jobs). */
    private static final int EXAMPLES_PER_STEP = 4;
    private static final int ANSWER_TOKENS = 8;
    /** The whole run's bound: generous for two busy cores, but a hang fails with what did not happen. */
    private static final Duration RUN_TIMEOUT = Duration.ofMinutes(10);
    private static final Pattern MERGED_COUNT = Pattern.compile(
            "loraflow_merger_checkpoints_total\\{[^}]*outcome=\"merged\"[^}]*} ([0-9.E]+)");

    /** Kept after the run (under target/), so the services' logs can be read when it fails. */
    private static final Path HOME = Path.of("target/replicas-it").toAbsolutePath();
    private final List<ServiceProcess> services = new ArrayList<>();
    private final List<String> report = new ArrayList<>();
    private long started;
    private long deadline;

    @AfterEach
    void stop() throws Exception {
        for (ServiceProcess service : services) {
            service.close();
        }
        System.clearProperty("aws.accessKeyId");
        System.clearProperty("aws.secretAccessKey");
        System.clearProperty("loraflow.store.cache-dir");
    }

    @Test
    void twoReplicasOfEveryServiceOneOfEachKilledTrainMergeAndServeEveryJobExactlyOnce() throws Exception {
        try {
            run();
        } finally {
            if (started != 0) {
                report.add("whole run " + (System.nanoTime() - started) / 1_000_000_000 + " s");
            }
            report.forEach(line -> System.out.println("replicas: " + line));
        }
    }

    private void run() throws Exception {
        Map<String, Path> jars = ServiceProcess.packagedServices(ROOT);
        started = System.nanoTime();
        deadline = started + RUN_TIMEOUT.toNanos();
        ServiceProcess.deleteTree(HOME);
        Path models = Files.createDirectories(HOME.resolve("models"));
        RandomModel.write(new Gpt2Config(VOCAB, 32, 32, 2, 4, 64, 1e-5), 5, models.resolve(BASE));
        LocalS3Server s3 = S3.server();
        String storeUri = s3.storeUri("artifacts") + "?endpoint=" + s3.endpoint() + "&path-style=true";
        // Where a local store would be: nothing may be written there.
        Path localStore = HOME.resolve("local-store");
        Map<String, String> common = Map.of("KAFKA_BOOTSTRAP_SERVERS", KAFKA.broker().bootstrapServers(),
                "LORAFLOW_MODELS_ROOT", models.toString(), "LORAFLOW_STORE_ROOT", localStore.toString(),
                "LORAFLOW_STORE_URI", storeUri, "AWS_ACCESS_KEY_ID", s3.accessKey(),
                "AWS_SECRET_ACCESS_KEY", s3.secretKey(), "AWS_REGION", "us-east-1", "LORAFLOW_API_KEYS", API_KEY);

        List<ServiceProcess> trainers = new ArrayList<>();
        List<ServiceProcess> mergers = new ArrayList<>();
        List<ServiceProcess> servings = new ArrayList<>();
        for (String replica : List.of("a", "b")) {
            trainers.add(start("trainer", replica, jars, common, Map.of("LORAFLOW_TRAINER_SESSION_TIMEOUT", "6s")));
            // Every checkpoint is merged; a dead replica's partitions go to the other after 6 s, not the default 45.
            mergers.add(start("merger", replica, jars, common, Map.of("LORAFLOW_MERGER_TRIGGER", "every",
                    "LORAFLOW_MERGER_WORK_DIR", HOME.resolve("merger-work-" + replica).toString()),
                    "-Dmp.messaging.incoming.checkpoints.session.timeout.ms=6000"));
            servings.add(start("serving", replica, jars, common, Map.of("LORAFLOW_SERVING_FOLLOW_MODELS", "true",
                    "LORAFLOW_SERVING_FOLLOW_MODEL_NAMES", "*", "LORAFLOW_SERVING_INTRA_OP_THREADS", "1",
                    "QUARKUS_GRPC_SERVER_PORT", Integer.toString(ServiceProcess.freePort()))));
        }
        for (ServiceProcess service : services) {
            service.awaitOk(service.name().startsWith("serving") ? "/q/health/live" : "/q/health/ready", remaining());
        }
        fault("6 replicas up");

        Map<String, List<Example>> data = new LinkedHashMap<>();
        for (int i = 0; i < JOBS; i++) {
            data.put("replicas-" + i, TrainingTraffic.examples(STEPS * EXAMPLES_PER_STEP, 1700 + i, VOCAB));
        }
        // Round robin over the jobs, so that all six are in flight together.
        List<String> jobIds = List.copyOf(data.keySet());
        List<List<byte[]>> perJob = jobIds.stream().map(job -> TrainingTraffic.batches(job, data.get(job))).toList();
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int seq = 0; seq < perJob.stream().mapToInt(List::size).max().orElseThrow(); seq++) {
            for (int j = 0; j < JOBS; j++) {
                if (seq < perJob.get(j).size()) {
                    records.add(new ProducerRecord<>(PlatformUsers.BATCHES, jobIds.get(j).getBytes(StandardCharsets.UTF_8),
                            perJob.get(j).get(seq)));
                }
            }
        }
        // The batches run ahead only as far as allowed: half of each job first, so that the faults land mid-job.
        AtomicInteger allowed = new AtomicInteger(records.size() / 2);
        AtomicInteger sent = new AtomicInteger();
        AtomicReference<Exception> streamFailure = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer = producer()) {
            for (String job : jobIds) {
                producer.send(new ProducerRecord<>(PlatformUsers.JOBS, job.getBytes(StandardCharsets.UTF_8),
                        TrainingTraffic.jobJson(job, BASE, STEPS, CHECKPOINT_EVERY).getBytes(StandardCharsets.UTF_8))).get();
            }
            Thread stream = Thread.ofPlatform().name("batches").start(() -> {
                try {
                    for (ProducerRecord<byte[], byte[]> record : records) {
                        while (sent.get() >= allowed.get()) {
                            Thread.sleep(50);
                        }
                        producer.send(record).get();
                        sent.incrementAndGet();
                    }
                } catch (Exception e) {
                    streamFailure.set(e);
                }
            });

            // A merger right after it announced a model: its record's offset is not committed yet (throttled, 5 s).
            ServiceProcess merger = awaitFirstAnnouncer(mergers);
            merger.kill();
            fault(merger.name() + " SIGKILL right after announcing (offset not committed)");
            merger.start();

            // A trainer holding a job past its first checkpoint and short of its end.
            ServiceProcess trainer = awaitTrainerMidJob(trainers);
            trainer.kill();
            fault(trainer.name() + " SIGKILL mid-job");
            trainer.start();
            allowed.set(records.size());

            // A serving replica that has taken at least one model, while the final ones are still to come.
            ServiceProcess serving = servings.getFirst();
            await("serving-a took a model from the announcements", () -> served(serving).size() >= 1, serving);
            serving.kill();
            fault(serving.name() + " SIGKILL while following");
            serving.start();

            stream.join(remaining());
            assertFalse(stream.isAlive(), "not every batch was sent within " + RUN_TIMEOUT.toSeconds() + " s");
            assertEquals(null, streamFailure.get(), "every batch was sent");
        }

        // Every job ends with the bytes of the same job trained locally.
        Map<String, CheckpointEvent> finals = awaitFinalCheckpoints(data.keySet());
        fault("every job's final checkpoint announced");
        System.setProperty("aws.accessKeyId", s3.accessKey());
        System.setProperty("aws.secretAccessKey", s3.secretKey());
        System.setProperty("loraflow.store.cache-dir", HOME.resolve("cache/test").toString());
        ArtifactStore store = ArtifactStores.open(storeUri);
        for (Map.Entry<String, List<Example>> job : data.entrySet()) {
            CheckpointEvent last = finals.get(job.getKey());
            Path stored = store.open(URI.create(last.adapterUri()), last.adapterSha256());
            assertArrayEquals(trainedLocally(models.resolve(BASE), job.getKey(), job.getValue()),
                    Files.readAllBytes(stored.resolve(PeftAdapter.WEIGHTS_FILE)),
                    job.getKey() + " ends with the adapter of the same job trained locally");
            CheckpointEvent.Counts counts = last.counts();
            assertEquals(counts.received(), counts.applied() + counts.skippedDuplicate() + counts.deadLettered(),
                    job.getKey() + " " + counts);
            assertEquals(0, counts.deadLettered(), job.getKey() + " " + counts);
        }
        report.add("adapters: all " + JOBS + " byte-identical to local training");

        // Both serving replicas serve every job's newest model, and answer alike.
        for (ServiceProcess replica : servings) {
            await(replica.name() + " served every job's version " + STEPS,
                    () -> served(replica).entrySet().stream().filter(model -> model.getValue() == STEPS)
                            .map(Map.Entry::getKey).toList().containsAll(jobIds), replica);
        }
        fault("both serving replicas serve every job's newest model");
        for (String job : jobIds) {
            for (int prompt = 0; prompt < 2; prompt++) {
                int[] ids = TrainingTraffic.examples(1, job.hashCode() + prompt, VOCAB).getFirst().inputIds();
                JsonNode first = completion(servings.get(0), job, ids);
                JsonNode second = completion(servings.get(1), job, ids);
                assertEquals(ANSWER_TOKENS, first.size(), job + ": " + first);
                assertEquals(first, second, job + ": both replicas answer the same greedy request alike");
            }
        }
        report.add("answers: both replicas alike for " + JOBS + " models x 2 prompts");

        // Exactly one announcement per (job, step), once nothing is being merged any more.
        Map<String, Integer> expected = new TreeMap<>();
        for (String job : jobIds) {
            for (int step = CHECKPOINT_EVERY; step <= STEPS; step += CHECKPOINT_EVERY) {
                expected.put(job + "@" + step, 1);
            }
        }
        Map<String, Integer> announcements = awaitAnnouncements(expected.keySet());
        assertEquals(expected, announcements, "one loraflow.models.merged event per job and step");
        report.add("announcements: exactly one per (job, step), " + expected.size() + " in all");
        assertFalse(Files.exists(localStore), "nothing was written to a local artifact store");
        for (ServiceProcess service : services) {
            service.awaitOk("/q/health/live", remaining());
        }
    }

    private ServiceProcess start(String service, String replica, Map<String, Path> jars, Map<String, String> common,
                                 Map<String, String> extra, String... jvmOptions) throws IOException {
        Map<String, String> environment = new HashMap<>(common);
        environment.putAll(extra);
        // Each replica signs in as its service's Kafka user, and caches what it opens on a volume of its own.
        environment.put("LORAFLOW_KAFKA_USERNAME", service);
        environment.put("LORAFLOW_KAFKA_PASSWORD", KAFKA.broker().password(service));
        environment.put("LORAFLOW_STORE_CACHE_DIR", HOME.resolve("cache").resolve(service + "-" + replica).toString());
        List<String> options = new ArrayList<>(List.of("-Xmx384m"));
        options.addAll(List.of(jvmOptions));
        ServiceProcess process = new ServiceProcess(service + "-" + replica, jars.get(service), environment,
                Files.createDirectories(HOME.resolve("logs"))).jvmOptions(options.toArray(String[]::new)).start();
        services.add(process);
        return process;
    }

    /** The merger whose count of announced models grows first, as soon as it does. */
    private ServiceProcess awaitFirstAnnouncer(List<ServiceProcess> mergers) throws Exception {
        AtomicReference<ServiceProcess> announcer = new AtomicReference<>();
        await("a merger announced a merged model", () -> {
            for (ServiceProcess merger : mergers) {
                HttpResponse<String> metrics = merger.get("/q/metrics");
                Matcher count = metrics == null ? null : MERGED_COUNT.matcher(metrics.body());
                if (count != null && count.find() && Double.parseDouble(count.group(1)) >= 1) {
                    announcer.set(merger);
                    return true;
                }
            }
            return false;
        }, mergers.toArray(ServiceProcess[]::new));
        return announcer.get();
    }

    /** A trainer with a job past its first checkpoint and short of its last step. */
    private ServiceProcess awaitTrainerMidJob(List<ServiceProcess> trainers) throws Exception {
        AtomicReference<ServiceProcess> holder = new AtomicReference<>();
        await("a trainer held a job mid-way", () -> {
            for (ServiceProcess trainer : trainers) {
                HttpResponse<String> jobs = trainer.get("/jobs");
                if (jobs != null && jobs.statusCode() == 200) {
                    for (JsonNode job : JSON.readTree(jobs.body())) {
                        long step = job.path("step").asLong();
                        if (step >= CHECKPOINT_EVERY && step < STEPS) {
                            holder.set(trainer);
                            return true;
                        }
                    }
                }
            }
            return false;
        }, trainers.toArray(ServiceProcess[]::new));
        return holder.get();
    }

    /** The followed models a serving replica serves, by name, with their announced versions. */
    private static Map<String, Long> served(ServiceProcess serving) throws IOException, InterruptedException {
        Map<String, Long> served = new HashMap<>();
        HttpResponse<String> models = serving.get("/v1/models");
        if (models != null && models.statusCode() == 200) {
            for (JsonNode model : JSON.readTree(models.body()).path("data")) {
                JsonNode announced = model.path("announced");
                if (announced.path("model").asText().equals(model.path("id").asText())) {
                    served.put(model.path("id").asText(), announced.path("model_version").asLong());
                }
            }
        }
        return served;
    }

    /** The greedy answer's token ids. */
    private static JsonNode completion(ServiceProcess serving, String model, int[] prompt) throws Exception {
        ObjectNode request = JSON.createObjectNode().put("model", model).put("max_tokens", ANSWER_TOKENS)
                .put("temperature", 0);
        var ids = request.putArray("prompt");
        for (int id : prompt) {
            ids.add(id);
        }
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + serving.port() + "/v1/completions"))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString(request.toString())).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, response.statusCode(), serving.name() + " /v1/completions " + model + ": " + response.body());
        return JSON.readTree(response.body()).path("choices").path(0).path("token_ids");
    }

    /** What {@code ./loraflow train --no-shuffle} makes of the job's examples: the adapter's weights file. */
    private static byte[] trainedLocally(Path base, String jobId, List<Example> examples) throws Exception {
        TrainingJob job = TrainingJob.parse(TrainingTraffic.jobJson(jobId, BASE, STEPS, CHECKPOINT_EVERY)
                .getBytes(StandardCharsets.UTF_8));
        ModelConfig config = ModelConfig.read(base.resolve("config.json"));
        CausalLanguageModel model = CausalLanguageModel.load(base, job.loraConfig(config, BASE), job.seed(),
                job.quantization());
        List<Integer> stops = StopTokens.of(base, null);
        Trainer trainer = new Trainer(model, job.trainingSettings(), "reference");
        BatchSampler sampler = new BatchSampler(examples, job.batchSize(), job.seqLen(), stops.isEmpty() ? 0 : stops.getFirst(),
                job.seed(), false, 0);
        for (long step = 0; step < job.totalSteps(); step++) {
            trainer.step(sampler);
        }
        Path out = Files.createTempDirectory(Files.createDirectories(HOME.resolve("reference")), jobId);
        trainer.save(out);
        return Files.readAllBytes(out.resolve(PeftAdapter.WEIGHTS_FILE));
    }

    /** Every job's final checkpoint event (the first one seen; a resumed trainer may announce one twice, alike). */
    private Map<String, CheckpointEvent> awaitFinalCheckpoints(Set<String> jobs) throws Exception {
        Map<String, CheckpointEvent> finals = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(PlatformUsers.CHECKPOINTS)) {
            await("every job's final checkpoint was announced", () -> {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    CheckpointEvent event = CheckpointEvent.parse(record.value());
                    if (event.last()) {
                        finals.putIfAbsent(event.jobId(), event);
                    }
                }
                return finals.keySet().containsAll(jobs);
            }, services.toArray(ServiceProcess[]::new));
        }
        return finals;
    }

    /**
     * The merged events per "job@step", read committed from the start of the topic to its end once every
     * checkpoint has been announced and the mergers' counts stopped moving.
     */
    private Map<String, Integer> awaitAnnouncements(Set<String> expected) throws Exception {
        Map<String, Integer> counts = new TreeMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(PlatformUsers.MODELS_MERGED)) {
            await("every checkpoint was announced merged", () -> {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    MergedModelEvent event = MergedModelEvent.parse(record.value());
                    assertTrue(event.verification().passed(), "announced unverified: " + event);
                    counts.merge(event.model() + "@" + event.modelVersion(), 1, Integer::sum);
                }
                return expected.stream().allMatch(counts::containsKey);
            }, services.toArray(ServiceProcess[]::new));
            // Then to the end: whatever a merger might still announce twice is on the topic by now.
            Map<TopicPartition, Long> ends = consumer.endOffsets(consumer.assignment());
            await("the merged topic was read to its end", () -> {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    MergedModelEvent event = MergedModelEvent.parse(record.value());
                    counts.merge(event.model() + "@" + event.modelVersion(), 1, Integer::sum);
                }
                for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
                    if (consumer.position(end.getKey()) < end.getValue()) {
                        return false;
                    }
                }
                return true;
            });
        }
        return counts;
    }

    private KafkaConsumer<byte[], byte[]> consumer(String topic) {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "replicas-it-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
                new ByteArrayDeserializer());
        consumer.subscribe(List.of(topic));
        return consumer;
    }

    private static KafkaProducer<byte[], byte[]> producer() {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.PRODUCER);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        return new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer());
    }

    @FunctionalInterface
    private interface Condition {
        boolean holds() throws Exception;
    }

    /** Polls {@code condition} until it holds, or fails saying {@code what} did not happen, with the logs' tails. */
    private void await(String what, Condition condition, ServiceProcess... concerned) throws Exception {
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                StringBuilder tails = new StringBuilder();
                for (ServiceProcess service : concerned) {
                    tails.append("\n--- ").append(service.name()).append(" ---\n").append(service.tail());
                }
                throw new AssertionError("within " + RUN_TIMEOUT.toSeconds() + " s, it did not happen that " + what
                        + " (logs in " + HOME.resolve("logs") + "; so far:\n" + String.join("\n", report) + ")" + tails);
            }
            Thread.sleep(100);
        }
    }

    private Duration remaining() {
        return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
    }

    private void fault(String what) {
        report.add(String.format("%6.1f s  %s", (System.nanoTime() - started) / 1e9, what));
    }
}
