package dev.loraflow.trainer.service;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.train.TrainingCheckpoint;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A job's run fed record by record, without Kafka: ordering, poison, checkpoints and resumption. */
class JobRunTest {

    @TempDir
    static Path models;
    @TempDir
    Path temp;

    static BaseModels.Base base;

    @BeforeAll
    static void baseModel() throws IOException {
        TrainingFixtures.writeBase(models);
        base = new BaseModels(models, 1).get(TrainingFixtures.BASE);
    }

    /** Records what a run publishes. */
    static final class Recorder implements JobRun.Effects {
        final List<String> deadLetters = new ArrayList<>();
        final List<CheckpointEvent> checkpoints = new ArrayList<>();

        @Override
        public void deadLetter(String reason, SourceRecord source, String jobId, Long seq) {
            deadLetters.add(seq + ": " + reason);
        }

        @Override
        public void announce(CheckpointEvent event) {
            checkpoints.add(event);
        }
    }

    /** The examples cut into records of 1–5 examples, as a producer might send them. */
    static List<byte[]> records(String jobId, List<Example> examples) {
        List<byte[]> records = new ArrayList<>();
        int[] sizes = {3, 5, 1, 4, 2};
        int from = 0;
        for (int seq = 0; from < examples.size(); seq++) {
            int to = Math.min(examples.size(), from + sizes[seq % sizes.length]);
            records.add(TrainingBatch.encode(jobId, seq, examples.subList(from, to)));
            from = to;
        }
        return records;
    }

    static void feed(JobRun run, byte[] value, long offset) throws IOException {
        SourceRecord source = new SourceRecord("batches", 0, offset, null, value);
        try {
            run.accept(TrainingBatch.parse(value), source);
        } catch (EventFormatException e) {
            run.rejectUnreadable(e.getMessage(), source);
        }
    }

    private static byte[] adapterBytes(CheckpointEvent event, LocalArtifactStore store) throws IOException {
        return Files.readAllBytes(store.open(URI.create(event.adapterUri()), event.adapterSha256())
                .resolve(PeftAdapter.WEIGHTS_FILE));
    }

    @Test
    void theFinalAdapterIsTheOneTheCliTrainsFromTheSameExamples() throws IOException {
        TrainingJob job = TrainingFixtures.job("same", 6, 0);
        List<Example> examples = TrainingFixtures.examples(6 * 4, 1);
        Recorder recorder = new Recorder();
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        JobRun run = JobRun.startOrResume(job, base, store, recorder, Faults.none(), 0, 0);
        List<byte[]> records = records(job.jobId(), examples);
        for (int i = 0; i < records.size(); i++) {
            feed(run, records.get(i), i);
        }
        assertEquals(JobRun.State.FINISHED, run.state());
        assertEquals(1, recorder.checkpoints.size());
        CheckpointEvent last = recorder.checkpoints.getFirst();
        assertTrue(last.last());
        assertEquals(6, last.step());

        TrainingFixtures.trainDirectly(base, job, examples, temp.resolve("direct"));
        assertArrayEquals(Files.readAllBytes(temp.resolve("direct").resolve(PeftAdapter.WEIGHTS_FILE)),
                adapterBytes(last, store));
        assertEquals(records.size(), last.counts().received());
        assertEquals(records.size(), last.counts().applied());
        // where ./loraflow merge of the artifact's directory finds the base to check in its one pass
        Path artifact = store.open(URI.create(last.adapterUri()), last.adapterSha256());
        assertEquals(Optional.of(last.baseModelSha256()), TrainingCheckpoint.recordedBaseSha256(artifact));
    }

    @Test
    void duplicatesAreSkippedGapsHeldPoisonDeadLetteredAndTheCountsReconcile() throws IOException {
        TrainingJob job = TrainingFixtures.job("messy", 0, 0);
        List<Example> examples = TrainingFixtures.examples(10, 2);
        List<byte[]> good = records(job.jobId(), examples);
        Recorder recorder = new Recorder();
        JobRun run = JobRun.startOrResume(job, base, new LocalArtifactStore(temp.resolve("store")), recorder, Faults.none(),
                0, 0);
        long offset = 0;
        feed(run, good.get(0), offset++);
        feed(run, good.get(0), offset++);                                       // duplicate
        feed(run, good.get(2), offset++);                                       // ahead: held
        feed(run, "{not json".getBytes(StandardCharsets.UTF_8), offset++);      // unreadable
        feed(run, good.get(1), offset++);                                       // fills the gap, releases 2
        feed(run, """
                {"schema": "loraflow.training.batch", "version": 1, "job_id": "messy", "seq": 3,
                 "examples": [{"input_ids": [1, 300]}]}""".getBytes(StandardCharsets.UTF_8), offset++);  // id ≥ vocab
        feed(run, """
                {"schema": "loraflow.training.batch", "version": 2, "job_id": "messy", "seq": 4,
                 "examples": [{"input_ids": [1]}]}""".getBytes(StandardCharsets.UTF_8), offset++);  // unknown version
        feed(run, """
                {"schema": "loraflow.training.batch", "version": 1, "job_id": "messy", "seq": 4,
                 "examples": [{"input_ids": []}]}""".getBytes(StandardCharsets.UTF_8), offset++);  // empty example
        feed(run, TrainingBatch.encode(job.jobId(), 5, examples.subList(0, 2)), offset++);
        feed(run, TrainingBatch.encodeEnd(job.jobId(), 6), offset++);

        assertEquals(JobRun.State.FINISHED, run.state());
        JobStatus status = run.status();
        assertEquals(9, status.batchesReceived(), "every record but the marker");
        assertEquals(4, status.batchesApplied(), "seq 0, 1, 2, 5");
        assertEquals(1, status.batchesSkippedDuplicate());
        assertEquals(4, status.batchesDeadLettered());
        assertEquals(status.batchesReceived(),
                status.batchesApplied() + status.batchesSkippedDuplicate() + status.batchesDeadLettered());
        assertEquals(4, recorder.deadLetters.size(), recorder.deadLetters.toString());
        assertTrue(recorder.deadLetters.get(0).contains("not valid JSON"), recorder.deadLetters.get(0));
        assertTrue(recorder.deadLetters.get(1).contains("outside the vocabulary"), recorder.deadLetters.get(1));
        assertTrue(recorder.deadLetters.get(2).contains("schema version 2 is not supported"), recorder.deadLetters.get(2));
        assertTrue(recorder.deadLetters.get(3).contains("is empty"), recorder.deadLetters.get(3));
        CheckpointEvent last = recorder.checkpoints.getLast();
        assertTrue(last.last());
        assertEquals(new CheckpointEvent.Counts(9, 4, 1, 4), last.counts());
    }

    @Test
    void aBatchNumberedBeyondTheEndMarkerIsDeadLetteredNotHeld() throws IOException {
        TrainingJob job = TrainingFixtures.job("ended", 0, 0);
        List<byte[]> good = records(job.jobId(), TrainingFixtures.examples(6, 4));
        Recorder recorder = new Recorder();
        JobRun run = JobRun.startOrResume(job, base, new LocalArtifactStore(temp.resolve("store")), recorder, Faults.none(),
                0, 0);
        long offset = 0;
        for (byte[] record : good) {
            feed(run, record, offset++);
        }
        feed(run, TrainingBatch.encodeEnd(job.jobId(), good.size()), offset++);
        assertEquals(JobRun.State.FINISHED, run.state());
        feed(run, TrainingBatch.encode(job.jobId(), good.size() + 5, TrainingFixtures.examples(2, 5)), offset++);

        JobStatus status = run.status();
        assertEquals(0, status.batchesHeld(), "nothing waits for a gap after the end");
        assertEquals(List.of((good.size() + 5) + ": job ended already ended before batch " + (good.size() + 1)
                + "; batch " + (good.size() + 5) + " is beyond its end"), recorder.deadLetters);
        assertEquals(good.size() + 1, status.batchesReceived());
        assertEquals(status.batchesReceived(),
                status.batchesApplied() + status.batchesSkippedDuplicate() + status.batchesDeadLettered());
        assertEquals(Long.MAX_VALUE, run.durableOffset(), "the finished job no longer holds its partition's offset back");
    }

    @Test
    void aBatchHeldForAGapWhenTheJobReachesItsLastStepIsDeadLettered() throws IOException {
        TrainingJob job = TrainingFixtures.job("steps-then-gap", 2, 0);
        List<byte[]> good = records(job.jobId(), TrainingFixtures.examples(2 * 4, 6));
        Recorder recorder = new Recorder();
        JobRun run = JobRun.startOrResume(job, base, new LocalArtifactStore(temp.resolve("store")), recorder, Faults.none(),
                0, 0);
        feed(run, TrainingBatch.encode(job.jobId(), 1000, TrainingFixtures.examples(1, 7)), 0);  // far ahead: held
        long offset = 1;
        for (byte[] record : good) {
            feed(run, record, offset++);
        }
        assertEquals(JobRun.State.FINISHED, run.state());
        assertEquals(List.of("1000: sequence gap: the job ended before batch " + good.size() + " arrived"),
                recorder.deadLetters);
        CheckpointEvent last = recorder.checkpoints.getLast();
        assertTrue(last.last());
        assertEquals(good.size() + 1, last.counts().received());
        assertEquals(1, last.counts().deadLettered());
        assertEquals(Long.MAX_VALUE, run.durableOffset());
    }

    @Test
    void aRunResumedFromAnyCheckpointAndFedEverythingAgainEndsWithTheSameBytes() throws IOException {
        TrainingJob job = TrainingFixtures.job("resume", 8, 2);
        List<Example> examples = TrainingFixtures.examples(8 * 4, 3);
        List<byte[]> records = records(job.jobId(), examples);

        Recorder straight = new Recorder();
        LocalArtifactStore straightStore = new LocalArtifactStore(temp.resolve("straight"));
        JobRun run = JobRun.startOrResume(job, base, straightStore, straight, Faults.none(), 0, 0);
        for (int i = 0; i < records.size(); i++) {
            feed(run, records.get(i), i);
        }
        byte[] expected = adapterBytes(straight.checkpoints.getLast(), straightStore);
        assertEquals(List.of(2L, 4L, 6L, 8L), straight.checkpoints.stream().map(CheckpointEvent::step).toList());

        // A crash after each of the first three checkpoints: a new run from the store, every record delivered again.
        for (int crashAfter = 1; crashAfter <= 3; crashAfter++) {
            Recorder first = new Recorder();
            LocalArtifactStore store = new LocalArtifactStore(temp.resolve("crash" + crashAfter));
            JobRun doomed = JobRun.startOrResume(job, base, store, first, Faults.none(), 0, 0);
            int fed = 0;
            while (first.checkpoints.size() < crashAfter) {
                feed(doomed, records.get(fed), fed);
                fed++;
            }
            CheckpointEvent covered = first.checkpoints.getLast();
            Recorder second = new Recorder();
            JobRun resumed = JobRun.startOrResume(job, base, store, second, Faults.none(), 0, covered.offset());
            assertEquals(covered, second.checkpoints.getFirst(), "the restored checkpoint is announced again, unchanged");
            for (int i = 0; i < records.size(); i++) {
                feed(resumed, records.get(i), i);
            }
            CheckpointEvent last = second.checkpoints.getLast();
            assertTrue(last.last());
            assertArrayEquals(expected, adapterBytes(last, store), "crash after checkpoint " + crashAfter);
            assertEquals(straight.checkpoints.getLast().counts().applied(), last.counts().applied());
            assertEquals(last.counts().received(),
                    last.counts().applied() + last.counts().skippedDuplicate() + last.counts().deadLettered());
        }
    }
}
