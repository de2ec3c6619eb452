package dev.loraflow.trainer.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.Batch;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.train.MemoryEstimate;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.store.ArtifactStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;

/**
 * One job's training as its batches arrive, in sequence order, exactly once in effect.
 *
 * <p>Batches are consumed strictly by sequence number: a number already consumed is a duplicate and
 * skipped; a number ahead of the next expected one is held until the gap fills (at most
 * {@link #MAX_HELD} records; beyond that, or at the end-of-job marker, the held records are
 * dead-lettered). A consumed batch that cannot be applied is dead-lettered and its number counts as
 * consumed, so the job carries on. Examples queue up and leave the queue {@code batchSize × gradAccum}
 * at a time as one optimiser step.
 *
 * <p>A checkpoint records the data position it covers — the first batch not wholly consumed and how
 * many of its examples were — with the counts up to that position, inside the stored artifact. A job
 * resumed from it skips what the position covers, so every batch takes effect exactly once however
 * often the records are delivered again; since training is deterministic, a redone step writes the
 * same bytes as the lost one did.
 */
public final class JobRun {

    static final int MAX_HELD = 10_000;
    static final String JOB_STATE_FILE = "job_state.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a run does to the outside world. */
    public interface Effects {
        void deadLetter(String reason, SourceRecord source, String jobId, Long seq);

        /** Publishes a checkpoint event and returns once the broker has it. */
        void announce(CheckpointEvent event);
    }

    public enum State { RUNNING, FINISHED }

    private record Pending(Example example, long seq, int index, long offset) {}

    private enum Outcome { APPLIED, DEAD_LETTERED }

    private final TrainingJob job;
    private final BaseModels.Base base;
    private final ArtifactStore store;
    private final Effects effects;
    private final Faults faults;
    private final Trainer trainer;
    private final LoraAdapterConfig lora;
    private final int partition;
    private final Deque<Pending> pending = new ArrayDeque<>();
    private final TreeMap<Long, SourceRecord> held = new TreeMap<>();
    private final TreeMap<Long, TrainingBatch> heldBatches = new TreeMap<>();
    /** How each in-order record at or after the checkpoint position was consumed: subtracted from its counts. */
    private final TreeMap<Long, Outcome> sincePosition = new TreeMap<>();
    private long nextSeq;
    /** Examples of batch {@code nextSeq} that a restored checkpoint already consumed. */
    private int skipInNextSeq;
    private long received;
    private long applied;
    private long skippedDuplicate;
    private long deadLettered;
    private long lastOffset = -1;
    private State state = State.RUNNING;
    private double lastLoss = Double.NaN;
    private long tokens;
    private long trainingNanos;
    private Optional<ArtifactStore.Artifact> lastCheckpoint = Optional.empty();
    /** The first offset of this job's records that the newest durable checkpoint does not cover. */
    private long durableOffset;

    private JobRun(TrainingJob job, BaseModels.Base base, ArtifactStore store, Effects effects, Faults faults,
                   int partition, long firstOffset) throws IOException {
        this.job = job;
        this.base = base;
        this.store = store;
        this.effects = effects;
        this.faults = faults;
        this.partition = partition;
        this.lora = job.loraConfig(base.config(), job.baseModel());
        // Checked before anything is allocated: a job that cannot fit fails with the estimate's one line, not an OOM
        // that would take the other jobs of this JVM down with it.
        MemoryEstimate estimate = MemoryEstimate.forTraining(base.directory(), base.config(), lora, job.quantization(),
                job.batchSize(), job.seqLen(), job.gradientCheckpointing(), base.holds(job.quantization()));
        estimate.require((job.quantization() == Quantization.NONE ? "lora.quantize nf4, " : "")
                + (estimate.gradientCheckpointing() ? "" : "gradient_checkpointing, ") + "a smaller batch_size or seq_len,");
        CausalLanguageModel model = base.model(lora, job.seed(), job.quantization());
        this.trainer = new Trainer(model, job.trainingSettings(estimate.gradientCheckpointing()), "job:" + job.jobId(),
                CompletableFuture.completedFuture(base.sha256()));
        this.durableOffset = firstOffset;
    }

    /**
     * The job's run, from its newest checkpoint when the store has one.
     *
     * @param firstOffset the offset of the first record seen for the job, which bounds what is uncovered
     *                    until a checkpoint exists
     */
    public static JobRun startOrResume(TrainingJob job, BaseModels.Base base, ArtifactStore store, Effects effects,
                                       Faults faults, int partition, long firstOffset) throws IOException {
        JobRun run = new JobRun(job, base, store, effects, faults, partition, firstOffset);
        Optional<byte[]> reference = store.readReference(referenceName(job.jobId()));
        if (reference.isPresent()) {
            run.restore(JSON.readTree(reference.get()));
        }
        return run;
    }

    static String referenceName(String jobId) {
        return "job-" + jobId + ".latest.json";
    }

    private void restore(JsonNode reference) throws IOException {
        ArtifactStore.Artifact artifact = new ArtifactStore.Artifact(java.net.URI.create(reference.path("uri").asText()),
                reference.path("sha256").asText());
        Path directory = store.open(artifact.uri(), artifact.sha256());
        JsonNode saved = JSON.readTree(Files.readString(directory.resolve(JOB_STATE_FILE)));
        if (!saved.path("base_sha256").asText().equals(base.sha256())) {
            // Not the disk's fault and no retry mends it: a permanent failure of the job.
            throw new IllegalStateException("job " + job.jobId() + ": its checkpoint was trained on base " + saved.path("base_sha256")
                    .asText() + ", the base now named " + job.baseModel() + " is " + base.sha256());
        }
        trainer.restore(directory);
        nextSeq = saved.path("next_seq").asLong();
        skipInNextSeq = saved.path("examples_into_next_seq").asInt();
        received = saved.path("received").asLong();
        applied = saved.path("applied").asLong();
        skippedDuplicate = saved.path("skipped_duplicate").asLong();
        deadLettered = saved.path("dead_lettered").asLong();
        state = saved.path("finished").asBoolean() ? State.FINISHED : State.RUNNING;
        lastLoss = saved.path("loss").asDouble(Double.NaN);
        durableOffset = saved.path("offset").asLong();
        lastCheckpoint = Optional.of(artifact);
        // The event may not have gone out before the crash that brought us here; its repeat is harmless.
        effects.announce(event(artifact, saved));
    }

    public TrainingJob job() {
        return job;
    }

    public State state() {
        return state;
    }

    public int partition() {
        return partition;
    }

    /**
     * The offset from which this job's records must be read again after a crash: every earlier one is
     * covered by the newest checkpoint. {@link Long#MAX_VALUE} once the job is finished and checkpointed.
     */
    public long durableOffset() {
        return state == State.FINISHED && held.isEmpty() ? Long.MAX_VALUE : durableOffset;
    }

    /** A record whose value could not be read as a batch at all (bad JSON, schema, …). */
    public void rejectUnreadable(String reason, SourceRecord source) {
        received++;
        deadLettered++;
        lastOffset = source.offset();
        effects.deadLetter(reason, source, job.jobId(), null);
    }

    /** Takes one batch record of this job, in partition order. */
    public void accept(TrainingBatch batch, SourceRecord source) throws IOException {
        lastOffset = source.offset();
        if (batch.seq() < nextSeq) {
            if (!batch.endOfJob()) {
                received++;
                skippedDuplicate++;
            }
            return;
        }
        if (batch.seq() > nextSeq) {
            if (state == State.FINISHED) {
                if (!batch.endOfJob()) {
                    // Nothing comes after the end: held, it would wait for ever and hold the offsets back.
                    received++;
                    deadLettered++;
                    effects.deadLetter("job " + job.jobId() + " already ended before batch " + nextSeq + "; batch "
                            + batch.seq() + " is beyond its end", source, job.jobId(), batch.seq());
                }
                return;
            }
            if (held.containsKey(batch.seq())) {
                received++;
                skippedDuplicate++;
                return;
            }
            if (held.size() >= MAX_HELD) {
                received++;
                deadLettered++;
                effects.deadLetter("sequence gap: batch " + nextSeq + " never arrived and " + MAX_HELD
                        + " later batches are held", source, job.jobId(), batch.seq());
                return;
            }
            held.put(batch.seq(), source);
            heldBatches.put(batch.seq(), batch);
            return;
        }
        consume(batch, source);
        while (!held.isEmpty() && held.firstKey() == nextSeq) {
            long seq = held.firstKey();
            consume(heldBatches.remove(seq), held.remove(seq));
        }
    }

    private void consume(TrainingBatch batch, SourceRecord source) throws IOException {
        if (batch.endOfJob()) {
            nextSeq++;
            finishAtMarker();
            return;
        }
        received++;
        if (state == State.FINISHED) {
            deadLettered++;
            nextSeq++;
            effects.deadLetter("job " + job.jobId() + " already finished at step " + trainer.completedSteps(), source,
                    job.jobId(), batch.seq());
            return;
        }
        List<Example> examples;
        try {
            examples = batch.examples(base.config().vocabSize());
        } catch (EventFormatException e) {
            deadLettered++;
            sincePosition.put(batch.seq(), Outcome.DEAD_LETTERED);
            nextSeq++;
            skipInNextSeq = 0;
            effects.deadLetter(e.getMessage(), source, job.jobId(), batch.seq());
            return;
        }
        applied++;
        sincePosition.put(batch.seq(), Outcome.APPLIED);
        for (int i = skipInNextSeq; i < examples.size(); i++) {
            pending.add(new Pending(examples.get(i), batch.seq(), i, source.offset()));
        }
        skipInNextSeq = 0;
        nextSeq++;
        trainWhileFull();
    }

    private void trainWhileFull() throws IOException {
        int perStep = job.batchSize() * job.gradAccum();
        while (state == State.RUNNING && pending.size() >= perStep) {
            List<Example> examples = new ArrayList<>();
            for (int i = 0; i < perStep; i++) {
                examples.add(pending.poll().example());
            }
            step(examples);
        }
    }

    /** The marker: a short last step from what is queued, then the final checkpoint. */
    private void finishAtMarker() throws IOException {
        if (state == State.FINISHED) {
            return;
        }
        if (job.untilEndMarker() && !pending.isEmpty()) {
            List<Example> rest = new ArrayList<>();
            while (!pending.isEmpty()) {
                rest.add(pending.poll().example());
            }
            step(rest);
        }
        deadLetterHeld();
        if (state == State.RUNNING) {
            state = State.FINISHED;
            if (job.checkpointAtEnd()) {
                checkpoint(true);
            }
        }
    }

    /** The job ended: the batches held for a gap before it will never be consumed. */
    private void deadLetterHeld() {
        for (Map.Entry<Long, SourceRecord> gap : held.entrySet()) {
            received++;
            deadLettered++;
            effects.deadLetter("sequence gap: the job ended before batch " + nextSeq + " arrived", gap.getValue(),
                    job.jobId(), gap.getKey());
        }
        held.clear();
        heldBatches.clear();
    }

    /**
     * One optimiser step over {@code examples} (at most batchSize × gradAccum); a short last step is
     * padded with rows whose labels are all ignored, which add nothing to the loss or its gradient.
     */
    private void step(List<Example> examples) throws IOException {
        int batchSize = job.batchSize();
        List<Batch> microBatches = new ArrayList<>();
        for (int micro = 0; micro < job.gradAccum(); micro++) {
            List<Example> rows = new ArrayList<>();
            for (int row = 0; row < batchSize; row++) {
                int index = micro * batchSize + row;
                rows.add(index < examples.size() ? examples.get(index)
                        : new Example(new int[] {base.padId()}, new int[] {Softmax.IGNORE_INDEX}));
            }
            microBatches.add(Batch.pack(rows, job.seqLen(), base.padId()));
        }
        faults.reach(Faults.Point.MID_STEP, trainer.completedSteps() + 1);
        long start = System.nanoTime();
        Trainer.StepResult result = trainer.step(microBatches, trainer.dataPosition() + examples.size());
        trainingNanos += System.nanoTime() - start;
        tokens += result.tokens();
        lastLoss = result.loss();
        boolean last = !job.untilEndMarker() && trainer.finished();
        if (last) {
            state = State.FINISHED;
            deadLetterHeld();
        }
        boolean cadence = job.checkpointEvery() > 0 && result.step() % job.checkpointEvery() == 0;
        if (cadence || (last && job.checkpointAtEnd())) {
            checkpoint(last);
        }
    }

    /**
     * Stores the adapter, the training state and this run's position as one artifact, points the job's
     * reference at it, announces it, and only then lets the offsets move past what it covers.
     */
    private void checkpoint(boolean last) throws IOException {
        long step = trainer.completedSteps();
        long positionSeq = pending.isEmpty() ? nextSeq : pending.peek().seq();
        int positionIndex = pending.isEmpty() ? 0 : pending.peek().index();
        long offset = Stream.of(pending.isEmpty() ? Long.MAX_VALUE : pending.peek().offset(),
                        held.values().stream().mapToLong(SourceRecord::offset).min().orElse(Long.MAX_VALUE),
                        lastOffset + 1)
                .min(Comparator.naturalOrder()).orElseThrow();
        // Counts up to the position: records at or after it will be consumed (and counted) again on replay.
        long appliedAfter = sincePosition.tailMap(positionSeq, true).values().stream()
                .filter(o -> o == Outcome.APPLIED).count();
        long deadAfter = sincePosition.tailMap(positionSeq, true).values().stream()
                .filter(o -> o == Outcome.DEAD_LETTERED).count();
        ObjectNode saved = JSON.createObjectNode();
        saved.set("job", job.toJson());
        saved.put("base_sha256", base.sha256());
        saved.put("step", step);
        saved.put("loss", lastLoss);
        saved.put("finished", state == State.FINISHED);
        saved.put("final", last);
        saved.put("next_seq", positionSeq);
        saved.put("examples_into_next_seq", positionIndex);
        saved.put("partition", partition);
        saved.put("offset", offset);
        saved.put("received", received - appliedAfter - deadAfter);
        saved.put("applied", applied - appliedAfter);
        saved.put("skipped_duplicate", skippedDuplicate);
        saved.put("dead_lettered", deadLettered - deadAfter);

        Path staging = Files.createTempDirectory("loraflow-checkpoint-");
        ArtifactStore.Artifact artifact;
        try {
            trainer.save(staging);
            Files.writeString(staging.resolve(JOB_STATE_FILE), JSON.writerWithDefaultPrettyPrinter()
                    .writeValueAsString(saved), StandardCharsets.UTF_8);
            artifact = store.putDirectory(staging);
        } finally {
            try {
                FileTrees.delete(staging);
            } catch (IOException leftover) {
                // a leftover temp directory holds nothing anyone refers to
            }
        }
        faults.reach(Faults.Point.AFTER_CHECKPOINT_WRITE, step);
        ObjectNode reference = JSON.createObjectNode();
        reference.put("job_id", job.jobId());
        reference.put("step", step);
        reference.put("uri", artifact.uri().toString());
        reference.put("sha256", artifact.sha256());
        store.writeReference(referenceName(job.jobId()), JSON.writeValueAsBytes(reference));
        faults.reach(Faults.Point.AFTER_REFERENCE, step);
        effects.announce(event(artifact, saved));
        faults.reach(Faults.Point.AFTER_EVENT, step);
        lastCheckpoint = Optional.of(artifact);
        durableOffset = offset;
        sincePosition.headMap(positionSeq, false).clear();
    }

    private CheckpointEvent event(ArtifactStore.Artifact artifact, JsonNode saved) {
        ObjectNode loraJson = JSON.createObjectNode();
        loraJson.put("r", lora.r());
        loraJson.put("alpha", lora.loraAlpha());
        loraJson.put("dropout", lora.loraDropout());
        loraJson.put("use_rslora", lora.useRslora());
        loraJson.set("target_modules", job.toJson().path("lora").path("target_modules"));
        if (job.quantization() != Quantization.NONE) {
            // the base the adapter learned against; a merge still folds it into the unquantized base
            loraJson.put("base_quantization", job.quantization().toString());
        }
        return new CheckpointEvent(job.jobId(), saved.path("step").asLong(), saved.path("loss").asDouble(Double.NaN),
                saved.path("final").asBoolean(), artifact.uri().toString(), artifact.sha256(), job.baseModel(),
                base.sha256(), loraJson, saved.path("next_seq").asLong(), saved.path("examples_into_next_seq").asInt(),
                partition, saved.path("offset").asLong(),
                new CheckpointEvent.Counts(saved.path("received").asLong(), saved.path("applied").asLong(),
                        saved.path("skipped_duplicate").asLong(), saved.path("dead_lettered").asLong()));
    }

    /** For {@code GET /jobs}. */
    public JobStatus status() {
        double seconds = trainingNanos / 1e9;
        return new JobStatus(job.jobId(), state.name(), trainer.completedSteps(), job.totalSteps(), lastLoss,
                seconds > 0 ? tokens / seconds : 0, lastCheckpoint.map(a -> a.uri().toString()).orElse(null),
                lastCheckpoint.map(ArtifactStore.Artifact::sha256).orElse(null), received, applied, skippedDuplicate,
                deadLettered, held.size());
    }
}
