package dev.loraflow.merger.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.platform.kafka.BrokerConnection;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.DeadLetter;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.reliability.Backoff;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.platform.store.ArtifactStore;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.jboss.logging.Logger;

/**
 * The merger's one thread: consumes checkpoint events, merges those the trigger or a request selects,
 * one at a time, and publishes one event per checkpoint.
 *
 * <p>Exactly one event per checkpoint, across redeliveries and restarts: before any work the loop reads
 * the checkpoint's outcome reference in the store ({@code merge-<job>-<step>.outcome.json}); the outcome
 * is recorded before its event is sent and marked published after the broker acknowledged it, and a
 * checkpoint whose outcome exists is never merged again (an unpublished one is sent, then marked). The
 * offset is committed only after that, so a crash before the outcome redoes the work from the start; the
 * only duplicate left is a crash between the acknowledgement and the mark, which re-sends the same bytes.
 *
 * <p>No record's failure ends the loop. A transient one — the store or the work directory (a full disk),
 * the broker — is retried on the same record with a growing backoff and never announced; a permanent one
 * of the checkpoint (its adapter, its base, its verification) is announced on the failures topic; a record
 * that is not a checkpoint event at all goes to the dead-letter topic with the reason. A failed commit is
 * left to the next one: what it would have covered comes again and is found already done.
 */
public final class MergeLoop implements Runnable, AutoCloseable {

    private static final Logger LOG = Logger.getLogger(MergeLoop.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The largest checkpoint record read (the broker's default): a dead letter copies up to this much of it. */
    static final int MAX_RECORD_BYTES = 1 << 20;

    /** What a request for a checkpoint found. */
    public enum RequestStatus {
        QUEUED,
        MERGED,
        FAILED,
        UNKNOWN_CHECKPOINT
    }

    private final MergerSettings settings;
    private final ArtifactStore store;
    private final CheckpointMerger merger;
    private final Runnable setup;
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final KafkaProducer<byte[], byte[]> producer;
    private final BlockingQueue<CheckpointEvent> requests = new LinkedBlockingQueue<>();
    private final List<Consumer<CheckpointMerger.Outcome>> listeners = new CopyOnWriteArrayList<>();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final AtomicLong duplicates = new AtomicLong();
    private final AtomicLong crashes = new AtomicLong();
    private final BrokerConnection connection = new BrokerConnection();
    private final Backoff backoff = Backoff.standard();
    private final AtomicLong deadLettered = new AtomicLong();
    private final AtomicLong retries = new AtomicLong();

    /** @param setup run (and retried until it succeeds) before anything is consumed, e.g. creating topics */
    public MergeLoop(MergerSettings settings, ArtifactStore store, CheckpointMerger merger, Runnable setup) {
        this.settings = settings;
        this.store = store;
        this.merger = merger;
        this.setup = setup;
        Properties consumerConfig = new Properties();
        // One checkpoint per poll: a merge of a large model takes minutes, and the offset moves after each.
        consumerConfig.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 1);
        consumerConfig.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 60 * 60 * 1000);
        this.consumer = KafkaSetup.committedReader(settings.kafka(), settings.groupId(), consumerConfig);
        Properties producerConfig = new Properties();
        // A dead letter carries the record it sets aside: room for the largest the broker delivers.
        producerConfig.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, DeadLetter.maxEncodedBytes(MAX_RECORD_BYTES));
        this.producer = KafkaSetup.durableProducer(settings.kafka(), producerConfig);
    }

    /** Called on the loop's thread after each checkpoint's event is published. */
    public void onOutcome(Consumer<CheckpointMerger.Outcome> listener) {
        listeners.add(listener);
    }

    /** True once the loop has talked to the broker and while polls keep succeeding. */
    public boolean connected() {
        return connection.connected();
    }

    /** Checkpoints delivered again (or asked for) after their event was published: skipped. */
    public long duplicates() {
        return duplicates.get();
    }

    /** Records that were not checkpoint events, published to the dead-letter topic. */
    public long deadLettered() {
        return deadLettered.get();
    }

    /** Tries of a record again after a transient failure. */
    public long retries() {
        return retries.get();
    }

    /** Simulated crashes the loop resumed from, see {@link CrashPoint}. */
    public long crashes() {
        return crashes.get();
    }

    /**
     * Asks for a checkpoint the loop has seen to be merged, whatever the trigger; answered from the store,
     * so any replica answers for any checkpoint.
     */
    public RequestStatus request(String jobId, long step) throws IOException {
        Optional<JsonNode> outcome = readJson(outcomeReference(jobId, step));
        if (outcome.isPresent()) {
            return outcome.get().path("status").asText().equals("merged") ? RequestStatus.MERGED : RequestStatus.FAILED;
        }
        Optional<byte[]> checkpoint = store.readReference(checkpointReference(jobId, step));
        if (checkpoint.isEmpty()) {
            return RequestStatus.UNKNOWN_CHECKPOINT;
        }
        try {
            requests.add(CheckpointEvent.parse(checkpoint.get()));
        } catch (EventFormatException e) {
            throw new IOException("the stored checkpoint " + jobId + " step " + step + " is unreadable: " + e.getMessage(), e);
        }
        return RequestStatus.QUEUED;
    }

    /** The recorded outcome of a checkpoint: {status, topic, published, event}, if it was merged or failed. */
    public Optional<JsonNode> outcome(String jobId, long step) throws IOException {
        return readJson(outcomeReference(jobId, step));
    }

    @Override
    public void run() {
        try {
            connection.await(setup, running::get);
            consumer.subscribe(List.of(settings.checkpointsTopic()));
            while (running.get()) {
                try {
                    pollOnce();
                } catch (WakeupException e) {
                    throw e;
                } catch (RuntimeException e) {
                    // The poll's or the broker's failure, not a record's (those are handled in place).
                    connection.lost();
                    LOG.errorf(e, "merge loop: %s; trying again", Failures.describe(e));
                    backoff.sleepAfterFailure();
                }
            }
        } catch (WakeupException e) {
            if (running.get()) {
                throw e;
            }
        } catch (RuntimeException e) {
            connection.lost();
            LOG.error("merge loop stopped", e);
            throw e;
        } finally {
            consumer.close(Duration.ofSeconds(5));
            producer.close(Duration.ofSeconds(5));
        }
    }

    private void pollOnce() {
        CheckpointEvent requested = requests.poll();
        if (requested != null) {
            runOnce(requested);
        }
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
            TopicPartition partition = new TopicPartition(record.topic(), record.partition());
            try {
                handle(record);
                backoff.succeeded();
            } catch (CrashPoint.SimulatedCrash crash) {
                // As a restarted process would: nothing recorded, resume from the committed offset.
                crashes.incrementAndGet();
                LOG.warnf("%s; resuming from the committed offset", crash.getMessage());
                consumer.seek(partition, record.offset());
                continue;
            } catch (IOException | RuntimeException e) {
                // The store, the work directory or the broker, not the checkpoint (whose own failures are
                // announced): the same record again after a while, nothing announced, nothing skipped.
                retries.incrementAndGet();
                Duration wait = backoff.failed();
                LOG.errorf(e, "checkpoint at %s@%d: %s; retrying in %d s", partition, record.offset(), Failures.describe(e),
                        wait.toSeconds());
                consumer.seek(partition, record.offset());
                sleep(wait);
                continue;
            }
            commit(partition, record.offset() + 1);
        }
        connection.check(consumer, settings.checkpointsTopic());
    }

    private void commit(TopicPartition partition, long offset) {
        try {
            consumer.commitSync(Map.of(partition, new OffsetAndMetadata(offset)));
        } catch (WakeupException e) {
            throw e;
        } catch (KafkaException e) {
            // A rebalance or the broker away: the record comes again, here or elsewhere, and its recorded
            // outcome makes it a duplicate.
            LOG.warnf("commit of %s@%d failed (%s); the record will be seen again as done", partition, offset,
                    Failures.describe(e));
        }
    }

    private void handle(ConsumerRecord<byte[], byte[]> record) throws IOException {
        CheckpointEvent checkpoint;
        try {
            checkpoint = CheckpointEvent.parse(record.value());
        } catch (EventFormatException e) {
            // Not a checkpoint: nothing to merge, no model to announce a failure of; set aside with the reason.
            LOG.warnf("dead-lettering record %s-%d@%d: %s", record.topic(), record.partition(), record.offset(),
                    e.getMessage());
            KafkaSetup.sendAndWait(producer, settings.deadLetterTopic(), null, DeadLetter.encode(e.getMessage(),
                    record.topic(), record.partition(), record.offset(), record.key(), record.value(), null, null, MAX_RECORD_BYTES));
            deadLettered.incrementAndGet();
            return;
        }
        store.writeReference(checkpointReference(checkpoint.jobId(), checkpoint.step()), checkpoint.encode());
        if (settings.trigger().mergesOnArrival(checkpoint)) {
            process(checkpoint);
        }
    }

    private void runOnce(CheckpointEvent checkpoint) {
        try {
            process(checkpoint);
            backoff.succeeded();
        } catch (CrashPoint.SimulatedCrash crash) {
            crashes.incrementAndGet();
            LOG.warnf("%s; the request is taken up again", crash.getMessage());
            requests.add(checkpoint);
        } catch (IOException | RuntimeException e) {
            // Its checkpoint's own failures are announced by process: this is the store's or the broker's.
            retries.incrementAndGet();
            Duration wait = backoff.failed();
            LOG.errorf(e, "requested merge of %s step %d: %s; retrying in %d s", checkpoint.jobId(), checkpoint.step(),
                    Failures.describe(e), wait.toSeconds());
            requests.add(checkpoint);
            sleep(wait);
        }
    }

    private void process(CheckpointEvent checkpoint) throws IOException {
        String outcomeName = outcomeReference(checkpoint.jobId(), checkpoint.step());
        Optional<JsonNode> recorded = readJson(outcomeName);
        if (recorded.isPresent()) {
            if (!recorded.get().path("published").asBoolean()) {
                publish(outcomeName, (ObjectNode) recorded.get());
            } else {
                duplicates.incrementAndGet();
                LOG.infof("checkpoint %s step %d was already %s; not merged again", checkpoint.jobId(), checkpoint.step(),
                        recorded.get().path("status").asText());
            }
            return;
        }
        String model = checkpoint.jobId();
        CheckpointMerger.Outcome outcome = merger.merge(checkpoint, latestVersion(model));
        boolean merged = outcome instanceof CheckpointMerger.Merged;
        ObjectNode record = JSON.createObjectNode();
        record.put("status", merged ? "merged" : "failed");
        record.put("topic", merged ? settings.mergedTopic() : settings.failuresTopic());
        record.put("key", model);
        record.put("published", false);
        record.set("event", JSON.readTree(outcome.encode()));
        store.writeReference(outcomeName, JSON.writeValueAsBytes(record));
        publish(outcomeName, record);
        if (merged) {
            ObjectNode latest = JSON.createObjectNode();
            latest.put("version", checkpoint.step());
            store.writeReference(latestReference(model), JSON.writeValueAsBytes(latest));
        }
        listeners.forEach(listener -> listener.accept(outcome));
    }

    private void publish(String outcomeName, ObjectNode record) throws IOException {
        // Sent and acknowledged before the outcome is marked published.
        KafkaSetup.sendAndWait(producer, record.path("topic").asText(), record.path("key").asText(),
                JSON.writeValueAsBytes(record.get("event")));
        record.put("published", true);
        store.writeReference(outcomeName, JSON.writeValueAsBytes(record));
    }

    private Long latestVersion(String model) throws IOException {
        return readJson(latestReference(model)).map(latest -> latest.path("version").asLong()).orElse(null);
    }

    private Optional<JsonNode> readJson(String reference) throws IOException {
        Optional<byte[]> bytes = store.readReference(reference);
        return bytes.isEmpty() ? Optional.empty() : Optional.of(JSON.readTree(bytes.get()));
    }

    static String outcomeReference(String jobId, long step) {
        return MergeOutcomes.reference(jobId, step);
    }

    static String checkpointReference(String jobId, long step) {
        return "merge-" + jobId + "-" + step + ".checkpoint.json";
    }

    static String latestReference(String model) {
        return "model-" + model + ".latest.json";
    }

    private static void sleep(Duration duration) {
        try {
            Thread.sleep(duration);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        running.set(false);
        consumer.wakeup();
    }
}
