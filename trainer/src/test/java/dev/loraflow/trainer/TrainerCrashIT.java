package dev.loraflow.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.broker.KafkaBrokerExtension;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.trainer.service.BaseModels;
import dev.loraflow.trainer.service.TrainingFixtures;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged trainer as separate processes, killed without warning — by SIGKILL, or halted at a
 * chosen point of the checkpoint protocol — and restarted: every job's final adapter is still the
 * byte-identical one an uninterrupted run makes, and no batch is applied twice or skipped.
 */
class TrainerCrashIT {

    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int STEPS = 6;

    @TempDir
    static Path root;
    static BaseModels.Base base;
    private final List<Process> processes = new ArrayList<>();

    @BeforeAll
    static void baseModel() throws IOException {
        TrainingFixtures.writeBase(root.resolve("models"));
        base = new BaseModels(root.resolve("models"), 1).get(TrainingFixtures.BASE);
        // As the trainer would create them: jobs are produced here before any trainer has started.
        KafkaSetup.ensureTopics(KAFKA.broker().clientSettings(PlatformUsers.ADMIN), Map.of("loraflow.training.jobs", 1,
                "loraflow.training.batches", 4, "loraflow.adapter.checkpoints", 4, "loraflow.training.dead-letters", 1));
    }

    @AfterEach
    void stopTrainers() {
        processes.forEach(Process::destroyForcibly);
    }

    private Process trainer(String name, String fault) throws IOException {
        Path jar = Path.of(System.getProperty("loraflow.trainer.jar", "target/quarkus-app/quarkus-run.jar"));
        ProcessBuilder builder = new ProcessBuilder(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx1g",
                // What the killed trainer leaves in its temporary directory goes to this module's target/tmp.
                "-Djava.io.tmpdir=" + System.getProperty("java.io.tmpdir"), "-jar", jar.toAbsolutePath().toString());
        Map<String, String> env = builder.environment();
        env.put("KAFKA_BOOTSTRAP_SERVERS", KAFKA.broker().bootstrapServers());
        env.put("LORAFLOW_KAFKA_PASSWORD", KAFKA.broker().password(PlatformUsers.TRAINER));
        env.put("LORAFLOW_MODELS_ROOT", root.resolve("models").toString());
        env.put("LORAFLOW_STORE_ROOT", root.resolve("store").toString());
        env.put("QUARKUS_HTTP_PORT", "0");
        env.put("LORAFLOW_TRAINER_UNKNOWN_JOB_GRACE", "60s");
        env.put("LORAFLOW_TRAINER_SESSION_TIMEOUT", "6s");
        if (fault != null) {
            env.put("LORAFLOW_TRAINER_FAULT", fault);
        }
        builder.redirectErrorStream(true).redirectOutput(root.resolve(name + ".log").toFile());
        Process process = builder.start();
        processes.add(process);
        return process;
    }

    private void submit(String jobId, List<Example> examples) throws Exception {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.PRODUCER);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            byte[] key = jobId.getBytes(StandardCharsets.UTF_8);
            producer.send(new ProducerRecord<>("loraflow.training.jobs", key,
                    job(jobId).toJson().toString().getBytes(StandardCharsets.UTF_8))).get();
            int from = 0;
            for (int seq = 0; from < examples.size(); seq++) {
                int to = Math.min(examples.size(), from + 1 + seq % 3);
                producer.send(new ProducerRecord<>("loraflow.training.batches", key,
                        TrainingBatch.encode(jobId, seq, examples.subList(from, to)))).get();
                from = to;
            }
        }
    }

    private static TrainingJob job(String jobId) {
        return TrainingFixtures.job(jobId, STEPS, 2);
    }

    /** Every checkpoint event so far, by job; waits until each of {@code jobs} has its final one. */
    private Map<String, List<CheckpointEvent>> awaitFinal(Set<String> jobs, Duration timeout) throws Exception {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "it-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        Map<String, List<CheckpointEvent>> events = new HashMap<>();
        Set<String> finished = new HashSet<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            consumer.subscribe(List.of("loraflow.adapter.checkpoints"));
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!finished.containsAll(jobs)) {
                assertTrue(System.nanoTime() < deadline, "jobs " + jobs + " not all finished; finished " + finished);
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(300))) {
                    CheckpointEvent event = CheckpointEvent.parse(record.value());
                    events.computeIfAbsent(event.jobId(), id -> new ArrayList<>()).add(event);
                    if (event.last()) {
                        finished.add(event.jobId());
                    }
                }
            }
        }
        return events;
    }

    /** The final adapter is the uninterrupted one, and every step was announced with one content only. */
    private void assertExactlyOnce(String jobId, List<Example> examples, List<CheckpointEvent> events) throws IOException {
        Path reference = root.resolve("reference-" + jobId);
        TrainingFixtures.trainDirectly(base, job(jobId), examples, reference);
        Map<Long, CheckpointEvent> byStep = new HashMap<>();
        for (CheckpointEvent event : events) {
            CheckpointEvent first = byStep.putIfAbsent(event.step(), event);
            if (first != null) {
                assertEquals(first, event, jobId + ": step " + event.step() + " announced twice with different content");
            }
        }
        assertEquals(Set.of(2L, 4L, 6L), byStep.keySet(), jobId);
        CheckpointEvent last = byStep.get((long) STEPS);
        Path stored = new LocalArtifactStore(root.resolve("store")).open(URI.create(last.adapterUri()), last.adapterSha256());
        assertArrayEquals(Files.readAllBytes(reference.resolve(PeftAdapter.WEIGHTS_FILE)),
                Files.readAllBytes(stored.resolve(PeftAdapter.WEIGHTS_FILE)), jobId);
        CheckpointEvent.Counts counts = last.counts();
        assertEquals(counts.received(), counts.applied() + counts.skippedDuplicate() + counts.deadLettered(), jobId);
        assertEquals(0, counts.deadLettered(), jobId);
    }

    @Test
    void killedAtEveryPointOfTheCheckpointProtocolTheTrainerLosesAndRepeatsNothing() throws Exception {
        Map<String, List<Example>> data = new HashMap<>();
        List<String> faults = List.of("mid-step:3", "after-checkpoint-write:2", "after-reference:4", "after-event:2");
        for (int i = 0; i < faults.size(); i++) {
            String jobId = "crash-" + i;
            data.put(jobId, TrainingFixtures.examples(STEPS * 4, 100 + i));
            submit(jobId, data.get(jobId));
            Process doomed = trainer("fault-" + i, faults.get(i));
            assertTrue(doomed.waitFor(120, TimeUnit.SECONDS), "the trainer with fault " + faults.get(i) + " did not halt");
            assertEquals(137, doomed.exitValue(), "halted by the injected fault " + faults.get(i));
        }
        // And a plain SIGKILL while it trains: after its first checkpoint event, without warning.
        data.put("sigkill", TrainingFixtures.examples(STEPS * 4, 200));
        submit("sigkill", data.get("sigkill"));
        Process killed = trainer("sigkill", null);
        waitForStep("sigkill", 2);
        killed.destroyForcibly().waitFor(30, TimeUnit.SECONDS);

        trainer("recovery", null);
        Map<String, List<CheckpointEvent>> events = awaitFinal(data.keySet(), Duration.ofMinutes(3));
        for (Map.Entry<String, List<Example>> job : data.entrySet()) {
            assertExactlyOnce(job.getKey(), job.getValue(), events.get(job.getKey()));
        }
    }

    @Test
    void twoReplicasShareTheJobsThroughRebalancesAndEachJobFinishesExactlyOnce() throws Exception {
        Map<String, List<Example>> data = new HashMap<>();
        for (int i = 0; i < 4; i++) {
            String jobId = "shared-" + i;
            data.put(jobId, TrainingFixtures.examples(STEPS * 4, 300 + i));
        }
        Process first = trainer("replica-a", null);
        for (String jobId : data.keySet()) {
            submit(jobId, data.get(jobId));
        }
        waitForStep("shared-0", 2);
        trainer("replica-b", null);             // joins: the group rebalances while jobs train
        awaitGroupMembers(2, Duration.ofMinutes(2));
        first.destroyForcibly().waitFor(30, TimeUnit.SECONDS);  // leaves without a goodbye: rebalance again
        Map<String, List<CheckpointEvent>> events = awaitFinal(data.keySet(), Duration.ofMinutes(3));
        for (Map.Entry<String, List<Example>> job : data.entrySet()) {
            assertExactlyOnce(job.getKey(), job.getValue(), events.get(job.getKey()));
        }
    }

    /** Waits until the trainers' consumer group has this many members with partitions, e.g. a joined replica. */
    private static void awaitGroupMembers(int members, Duration timeout) throws Exception {
        try (Admin admin = Admin.create(KAFKA.broker().clientProperties(PlatformUsers.ADMIN))) {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                ConsumerGroupDescription group = admin.describeConsumerGroups(List.of(PlatformUsers.TRAINER_GROUP))
                        .describedGroups().get(PlatformUsers.TRAINER_GROUP).get(30, TimeUnit.SECONDS);
                long assigned = group.members().stream()
                        .filter(member -> !member.assignment().topicPartitions().isEmpty()).count();
                if (assigned >= members) {
                    return;
                }
                assertTrue(System.nanoTime() < deadline, "the trainers' group has " + assigned + " members with partitions, not "
                        + members);
                Thread.sleep(200);
            }
        }
    }

    private void waitForStep(String jobId, long step) throws Exception {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "it-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            consumer.subscribe(List.of("loraflow.adapter.checkpoints"));
            long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
            while (true) {
                assertTrue(System.nanoTime() < deadline, jobId + " never reached step " + step);
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(300))) {
                    JsonNode event = JSON.readTree(record.value());
                    if (event.path("job_id").asText().equals(jobId) && event.path("step").asLong() >= step) {
                        return;
                    }
                }
            }
        }
    }
}
