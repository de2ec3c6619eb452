package dev.loraflow.trainer.service;

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
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The training loop against a real broker and a real store on disk, with faults that must neither fail a
 * job nor lose a batch: the store's disk full while a checkpoint is written, a batch numbered beyond its
 * job's end.
 */
class TrainingLoopFaultsTest {

    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String JOBS = "loraflow.training.jobs";
    private static final String BATCHES = "loraflow.training.batches";
    private static final String CHECKPOINTS = "loraflow.adapter.checkpoints";
    private static final String DEAD_LETTERS = "loraflow.training.dead-letters";

    @TempDir
    static Path root;
    static BaseModels.Base base;
    private final List<Thread> threads = new ArrayList<>();
    private final List<TrainingLoop> loops = new ArrayList<>();

    @BeforeAll
    static void baseModel() throws IOException {
        TrainingFixtures.writeBase(root.resolve("models"));
        base = new BaseModels(root.resolve("models"), 1).get(TrainingFixtures.BASE);
    }

    @AfterEach
    void stopLoops() throws InterruptedException {
        loops.forEach(TrainingLoop::close);
        for (Thread thread : threads) {
            thread.join(Duration.ofSeconds(20));
        }
    }

    /**
     * The store as the trainer sees it when its volume fills up: every write fails with the file system's
     * "No space left on device" while {@link #full} is set; reads still work. Only the trainer's view of
     * the disk is changed here — the loop, the broker and the files are the real ones.
     */
    static final class FillingStore implements ArtifactStore {
        final LocalArtifactStore disk;
        final AtomicBoolean full = new AtomicBoolean();
        final AtomicInteger refusedWrites = new AtomicInteger();
        final AtomicInteger puts = new AtomicInteger();
        /** The disk fills up at this put (1-based): mid-job, with a checkpoint behind it. */
        final int fillAtPut;

        FillingStore(Path root, int fillAtPut) throws IOException {
            this.disk = new LocalArtifactStore(root);
            this.fillAtPut = fillAtPut;
        }

        private void write() throws IOException {
            if (full.get()) {
                refusedWrites.incrementAndGet();
                throw new IOException("No space left on device");
            }
        }

        @Override
        public Artifact putDirectory(Path source) throws IOException {
            if (puts.incrementAndGet() == fillAtPut) {
                full.set(true);
            }
            write();
            return disk.putDirectory(source);
        }

        @Override
        public Optional<Path> localRoot() {
            return disk.localRoot();
        }

        @Override
        public Path open(URI uri, String sha256) throws IOException {
            return disk.open(uri, sha256);
        }

        @Override
        public Optional<byte[]> readReference(String name) throws IOException {
            return disk.readReference(name);
        }

        @Override
        public void writeReference(String name, byte[] value) throws IOException {
            write();
            disk.writeReference(name, value);
        }

        @Override
        public boolean compareAndSetReference(String name, Optional<byte[]> expected, byte[] value) throws IOException {
            write();
            return disk.compareAndSetReference(name, expected, value);
        }

        @Override
        public java.util.List<String> referenceNames() throws IOException {
            return disk.referenceNames();
        }

        @Override
        public Sweep deleteUnreferenced(java.util.Set<String> live, java.time.Duration retention, java.time.Instant now)
                throws IOException {
            return disk.deleteUnreferenced(live, retention, now);
        }

        @Override
        public long diskUsage() throws IOException {
            return disk.diskUsage();
        }
    }

    private TrainingLoop start(ArtifactStore store, String group) {
        // The super user: each test's loop has topics and a consumer group of its own, which no service's ACLs name.
        KafkaClientSettings kafka = KAFKA.broker().clientSettings(PlatformUsers.ADMIN);
        TrainerSettings settings = new TrainerSettings(kafka, group, JOBS, BATCHES, CHECKPOINTS, DEAD_LETTERS, 1 << 20,
                Duration.ofSeconds(30), Duration.ofSeconds(6), Faults.none());
        TrainingLoop loop = new TrainingLoop(settings, new BaseModels(root.resolve("models"), 1), store,
                () -> KafkaSetup.ensureTopics(kafka, Map.of(JOBS, 1, BATCHES, 2, CHECKPOINTS, 2, DEAD_LETTERS, 1)));
        Thread thread = Thread.ofPlatform().name("loop-under-test").start(loop);
        loops.add(loop);
        threads.add(thread);
        return loop;
    }

    private void produce(String topic, String key, byte[] value) throws Exception {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            producer.send(new ProducerRecord<>(topic, key.getBytes(StandardCharsets.UTF_8), value)).get();
        }
    }

    private int submit(TrainingJob job, List<Example> examples) throws Exception {
        produce(JOBS, job.jobId(), job.toJson().toString().getBytes(StandardCharsets.UTF_8));
        int seq = 0;
        for (int from = 0; from < examples.size(); seq++) {
            int to = Math.min(examples.size(), from + 1 + seq % 3);
            produce(BATCHES, job.jobId(), TrainingBatch.encode(job.jobId(), seq, examples.subList(from, to)));
            from = to;
        }
        return seq;
    }

    /** Reads {@code topic} from its start until {@code done} holds of what was read. */
    private static List<JsonNode> readUntil(String topic, java.util.function.Predicate<List<JsonNode>> done,
                                            Duration timeout) throws Exception {
        return TopicReader.readUntil(KAFKA.broker().clientProperties(PlatformUsers.ADMIN), topic, JSON::readTree, done,
                timeout);
    }

    private static void await(BooleanSupplier condition, Duration timeout, String what) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    @Test
    void aDiskFullWhileCheckpointingPausesTheJobWhichThenEndsWithTheUndisturbedBytes() throws Exception {
        TrainingJob job = TrainingFixtures.job("disk-full", 6, 2);
        List<Example> examples = TrainingFixtures.examples(6 * 4, 41);
        FillingStore store = new FillingStore(root.resolve("store-full"), 2);
        TrainingLoop loop = start(store, "trainer-disk-full");
        List<String> states = new CopyOnWriteArrayList<>();
        loop.onStatus(status -> {
            if (status.jobId().equals(job.jobId())) {
                states.add(status.state());
            }
        });
        submit(job, examples);

        // The second checkpoint (step 4) finds the disk full: the job pauses and keeps trying. A write is refused
        // before the loop marks the job PAUSED, and between tries it runs again from its checkpoint: the state
        // is awaited, not read at the moment of a refusal.
        await(() -> store.refusedWrites.get() >= 2 && loop.status(job.jobId()).state().startsWith("PAUSED"),
                Duration.ofMinutes(2), "two refused checkpoint writes, the job paused");
        assertTrue(states.stream().anyMatch(state -> state.startsWith("PAUSED: No space left on device")), states.toString());
        store.full.set(false);

        List<JsonNode> checkpoints = readUntil(CHECKPOINTS, seen -> seen.stream()
                .anyMatch(event -> event.path("job_id").asText().equals(job.jobId()) && event.path("final").asBoolean()),
                Duration.ofMinutes(2));
        assertFalse(states.stream().anyMatch(state -> state.startsWith("FAILED")), states.toString());
        CheckpointEvent last = CheckpointEvent.parse(JSON.writeValueAsBytes(checkpoints.stream()
                .filter(event -> event.path("job_id").asText().equals(job.jobId()) && event.path("final").asBoolean())
                .findFirst().orElseThrow()));
        Path reference = root.resolve("reference-disk-full");
        TrainingFixtures.trainDirectly(base, job, examples, reference);
        assertArrayEquals(Files.readAllBytes(reference.resolve(PeftAdapter.WEIGHTS_FILE)),
                Files.readAllBytes(store.disk.open(URI.create(last.adapterUri()), last.adapterSha256())
                        .resolve(PeftAdapter.WEIGHTS_FILE)), "the resumed run wrote the undisturbed run's bytes");
        CheckpointEvent.Counts counts = last.counts();
        assertEquals(0, counts.deadLettered(), counts.toString());
        assertEquals(counts.received(), counts.applied() + counts.skippedDuplicate(), counts.toString());
        assertEquals("FINISHED", loop.status(job.jobId()).state());
    }

    @Test
    void aBatchNumberedBeyondItsJobsEndMarkerIsDeadLetteredWithTheReason() throws Exception {
        TrainingJob job = TrainingFixtures.job("marker-then-more", 0, 0);
        TrainingLoop loop = start(new LocalArtifactStore(root.resolve("store-marker")), "trainer-marker");
        int end = submit(job, TrainingFixtures.examples(8, 42));
        produce(BATCHES, job.jobId(), TrainingBatch.encodeEnd(job.jobId(), end));
        produce(BATCHES, job.jobId(), TrainingBatch.encode(job.jobId(), end + 3, TrainingFixtures.examples(2, 43)));

        List<JsonNode> deadLetters = readUntil(DEAD_LETTERS, seen -> seen.stream()
                .anyMatch(letter -> letter.path("job_id").asText().equals(job.jobId())), Duration.ofMinutes(2));
        JsonNode letter = deadLetters.stream().filter(l -> l.path("job_id").asText().equals(job.jobId())).findFirst()
                .orElseThrow();
        assertEquals(end + 3, letter.path("seq").asLong());
        assertTrue(letter.path("reason").asText().contains("beyond its end"), letter.toString());
        await(() -> loop.status(job.jobId()) != null && loop.status(job.jobId()).batchesDeadLettered() == 1,
                Duration.ofSeconds(30), "the dead letter counted");
        JobStatus status = loop.status(job.jobId());
        assertEquals("FINISHED", status.state());
        assertEquals(0, status.batchesHeld());
        assertEquals(status.batchesReceived(),
                status.batchesApplied() + status.batchesSkippedDuplicate() + status.batchesDeadLettered());
    }

    /**
     * A job whose step needs more memory than this JVM has (4096 sequences of 65 536 tokens: terabytes of
     * activations, with or without gradient checkpointing) is not started: it fails with the memory check's
     * one line as its status, its batches are dead-lettered with it, and the loop goes on, no OutOfMemoryError.
     */
    @Test
    void aJobThatCannotFitInMemoryFailsWithTheChecksOneLine() throws Exception {
        TrainingJob job = TrainingJob.parse("""
                {"schema": "loraflow.training.job", "version": 1, "job_id": "too-big", "base_model": "%s",
                 "lora": {"r": 4}, "optimizer": {"schedule": "constant"},
                 "batch_size": 4096, "seq_len": 65536, "total_steps": 0, "checkpoint": {"at_end": true}}
                """.formatted(TrainingFixtures.BASE).getBytes(StandardCharsets.UTF_8));
        TrainingLoop loop = start(new LocalArtifactStore(root.resolve("store-too-big")), "trainer-too-big");
        List<String> states = new CopyOnWriteArrayList<>();
        loop.onStatus(status -> {
            if (status.jobId().equals(job.jobId())) {
                states.add(status.state());
            }
        });
        submit(job, TrainingFixtures.examples(2, 44));

        List<JsonNode> deadLetters = readUntil(DEAD_LETTERS, seen -> seen.stream()
                .anyMatch(letter -> letter.path("job_id").asText().equals(job.jobId())), Duration.ofMinutes(2));
        String state = loop.status(job.jobId()).state();
        assertTrue(state.startsWith("FAILED: cannot start: needs about ") && state.contains("of Java heap")
                && state.contains("lora.quantize nf4") && !state.contains("\n"), state);
        assertFalse(states.stream().anyMatch(s -> s.startsWith("PAUSED")), "not retried: " + states);
        // Before the check the job said what it was doing, as it does for the minutes an 8 B base takes to load.
        assertTrue(states.stream().anyMatch(s -> s.equals("STARTING: loading base model " + job.baseModel())), states.toString());
        assertTrue(deadLetters.stream().filter(letter -> letter.path("job_id").asText().equals(job.jobId()))
                .allMatch(letter -> letter.path("reason").asText().contains("needs about")), deadLetters.toString());
    }
}
