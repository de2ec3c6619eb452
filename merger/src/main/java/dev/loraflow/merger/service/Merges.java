package dev.loraflow.merger.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.reliability.Backoff;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.platform.store.ArtifactStore;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * What the merger does with a checkpoint, one at a time: remembers it, merges those the trigger or a request
 * selects, and publishes one event per checkpoint. Checkpoint records come from the connector's channel
 * (messaging's {@code CheckpointConsumer}), which acknowledges a record only when {@link #arrived} returns;
 * requests ({@code POST /merges}) run on a thread of their own, never beside a merge.
 *
 * <p>Exactly one event per checkpoint, across redeliveries and restarts: before any work the checkpoint's
 * outcome reference in the store ({@code merge-<job>-<step>.outcome.json}) is read; the outcome is recorded
 * before its event is sent and marked published after the broker acknowledged it, and a checkpoint whose
 * outcome exists is never merged again (an unpublished one is sent, then marked). The record is acknowledged
 * (its offset committed) only after that, so a crash before the outcome redoes the work from the start; the
 * only duplicate left is a crash between the acknowledgement and the mark, which re-sends the same bytes. Across
 * replicas, messaging's {@code PartitionHandover} keeps two from working on one checkpoint at once: a partition
 * changes hands only once the record in hand is done, and a record whose partition left gives up ({@link Stopping}).
 *
 * <p>No record's failure stops the merger. A transient one — the store or the work directory (a full disk),
 * the broker — is retried on the same checkpoint with a growing backoff and never announced; a permanent one
 * of the checkpoint (its adapter, its base, its verification) is announced on the failures topic; a record
 * that is not a checkpoint event at all is refused ({@link EventFormatException}) and the connector puts it
 * on the dead-letter topic with the reason. An {@link Error} (out of memory) is not handled here: the caller
 * stops consuming and the service reports itself not live.
 */
public final class Merges implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(Merges.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Publishes an event and returns once the broker acknowledged it; throws when it cannot. */
    @FunctionalInterface
    public interface Publisher {
        void publish(String topic, String key, byte[] value);
    }

    /**
     * Thrown instead of waiting any longer when the service is stopping, or its record's partition went to another
     * replica: the record stays unacknowledged.
     */
    public static final class Stopping extends RuntimeException {
        Stopping() {
            this("the merger is stopping");
        }

        Stopping(String why) {
            super(why);
        }
    }

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
    private final Publisher publisher;
    private final ReentrantLock oneAtATime = new ReentrantLock();
    private final ExecutorService requestWorker = Executors.newSingleThreadExecutor(
            Thread.ofPlatform().name("loraflow-merge-requests").factory());
    private final List<Consumer<CheckpointMerger.Outcome>> listeners = new CopyOnWriteArrayList<>();
    private final AtomicLong duplicates = new AtomicLong();
    private final AtomicLong crashes = new AtomicLong();
    private final AtomicLong deadLettered = new AtomicLong();
    private final AtomicLong retries = new AtomicLong();
    private volatile boolean running = true;
    private volatile Throwable died;

    public Merges(MergerSettings settings, ArtifactStore store, CheckpointMerger merger, Publisher publisher) {
        this.settings = settings;
        this.store = store;
        this.merger = merger;
        this.publisher = publisher;
    }

    /** Called after each checkpoint's event is published. */
    public void onOutcome(Consumer<CheckpointMerger.Outcome> listener) {
        listeners.add(listener);
    }

    /** Checkpoints delivered again (or asked for) after their event was published: skipped. */
    public long duplicates() {
        return duplicates.get();
    }

    /** Records that were not checkpoint events, published to the dead-letter topic. */
    public long deadLettered() {
        return deadLettered.get();
    }

    /** Counts a record the connector put on the dead-letter topic. */
    public void countDeadLetter() {
        deadLettered.incrementAndGet();
    }

    /** Tries of a checkpoint again after a transient failure. */
    public long retries() {
        return retries.get();
    }

    /** Simulated crashes taken up again from the start, see {@link CrashPoint}. */
    public long crashes() {
        return crashes.get();
    }

    /** False once an {@link Error} ended a merge: only a restart of the process brings the merger back. */
    public boolean alive() {
        return died == null;
    }

    /** Records that an {@link Error} ended a merge: nothing more is merged by this process. */
    public void died(Throwable error) {
        died = error;
        LOG.error("a merge ended with an Error; nothing more is merged and liveness reports DOWN", error);
    }

    /**
     * A record of the checkpoints topic: remembered, merged when the trigger says so, its event published;
     * returns when all that is done, trying transient failures again meanwhile.
     *
     * @param held whether this replica still holds the record's partition: a transient failure is not tried again
     *             once it does not (the new owner takes the record up)
     * @throws EventFormatException the record is not a checkpoint event (nothing done)
     * @throws Stopping             the service stopped, or the partition was handed over, before it was done
     */
    public void arrived(byte[] value, BooleanSupplier held) throws EventFormatException {
        CheckpointEvent checkpoint = CheckpointEvent.parse(value);
        untilDone(checkpoint, held, () -> {
            store.writeReference(checkpointReference(checkpoint.jobId(), checkpoint.step()), checkpoint.encode());
            if (settings.trigger().mergesOnArrival(checkpoint)) {
                process(checkpoint);
            }
        });
    }

    /**
     * Asks for a checkpoint the merger has seen to be merged, whatever the trigger; answered from the store,
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
        CheckpointEvent requested;
        try {
            requested = CheckpointEvent.parse(checkpoint.get());
        } catch (EventFormatException e) {
            throw new IOException("the stored checkpoint " + jobId + " step " + step + " is unreadable: " + e.getMessage(), e);
        }
        requestWorker.execute(() -> {
            try {
                untilDone(requested, () -> true, () -> process(requested));
            } catch (Stopping stopping) {
                LOG.infof("requested merge of %s step %d left undone: the merger is stopping", jobId, step);
            } catch (Error error) {
                died(error);
            }
        });
        return RequestStatus.QUEUED;
    }

    /** The recorded outcome of a checkpoint: {status, topic, published, event}, if it was merged or failed. */
    public Optional<JsonNode> outcome(String jobId, long step) throws IOException {
        return readJson(outcomeReference(jobId, step));
    }

    /** The work done on a checkpoint, the store's and the broker's failures thrown. */
    private interface Work {
        void run() throws IOException;
    }

    /**
     * Does {@code work} once no other merge runs; a transient failure (the store, the work directory, the
     * broker — the checkpoint's own failures are announced by {@link #process}) is tried again after a
     * growing wait, nothing announced, nothing skipped; a simulated crash is taken up again from the start.
     */
    private void untilDone(CheckpointEvent checkpoint, BooleanSupplier held, Work work) {
        Backoff backoff = Backoff.standard();
        while (true) {
            if (!running) {
                throw new Stopping();
            }
            if (!held.getAsBoolean()) {
                throw new Stopping("checkpoint " + checkpoint.jobId() + " step " + checkpoint.step()
                        + " left to the replica its partition was handed to");
            }
            Duration wait;
            oneAtATime.lock();
            try {
                work.run();
                return;
            } catch (CrashPoint.SimulatedCrash crash) {
                // As a restarted process would: nothing recorded, the checkpoint taken up again.
                crashes.incrementAndGet();
                LOG.warnf("%s; taking the checkpoint up again", crash.getMessage());
                continue;
            } catch (IOException | RuntimeException e) {
                retries.incrementAndGet();
                wait = backoff.failed();
                LOG.errorf(e, "checkpoint %s step %d: %s; retrying in %d s", checkpoint.jobId(), checkpoint.step(),
                        Failures.describe(e), wait.toSeconds());
            } finally {
                oneAtATime.unlock();
            }
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
        publisher.publish(record.path("topic").asText(), record.path("key").asText(), JSON.writeValueAsBytes(record.get("event")));
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

    private void sleep(Duration duration) {
        try {
            Thread.sleep(duration);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Stopping();
        }
    }

    /** Stops taking work: a merge under way finishes, waits and requests end. */
    @Override
    public void close() {
        running = false;
        requestWorker.shutdownNow();
    }
}
