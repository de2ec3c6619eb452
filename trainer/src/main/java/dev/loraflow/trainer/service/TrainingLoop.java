package dev.loraflow.trainer.service;

import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.DeadLetter;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.kafka.BrokerConnection;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.reliability.Backoff;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.platform.store.ArtifactStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.jboss.logging.Logger;

/**
 * The trainer's one thread: reads every job definition, consumes the batches of the partitions the
 * group gives this replica, drives each job's {@link JobRun}, and commits offsets only as far as
 * checkpoints cover. Plain Kafka clients rather than a reactive channel, because recovery needs
 * exact control: seeking back to a record whose job is not yet known, pausing a partition, and
 * committing an offset chosen per partition as the least any of its jobs still needs.
 *
 * <p>No record's failure ends the loop. A transient one (the store's disk full or unmounted, the broker
 * gone while a checkpoint or a dead letter is published) drops the job's run, seeks its partition back
 * to what the job's newest checkpoint does not cover and pauses the partition with a growing backoff; the
 * job then resumes from that checkpoint, as after a crash, and ends with the same bytes. A permanent one
 * fails the job, and the partition is read again from the same place so that every record the failed
 * run had taken in is dead-lettered with the reason. A failed commit (a rebalance, a broker away) is
 * retried with the next one; the positions it would have recorded are only ever read again as duplicates.
 */
public final class TrainingLoop implements Runnable, AutoCloseable {

    private static final Logger LOG = Logger.getLogger(TrainingLoop.class);

    private final TrainerSettings settings;
    private final Runnable setup;
    private final BaseModels bases;
    private final ArtifactStore store;
    private final KafkaConsumer<byte[], byte[]> batches;
    private final KafkaConsumer<byte[], byte[]> jobsReader;
    private final KafkaProducer<byte[], byte[]> producer;
    private final Map<String, TrainingJob> jobs = new HashMap<>();
    private final Map<String, JobRun> runs = new HashMap<>();
    /** Jobs whose training failed for a reason their batches cannot fix: later batches are dead-lettered. */
    private final Map<String, String> failed = new HashMap<>();
    /** Partitions paused on a batch whose job is not known yet, with when that began. */
    private final Map<TopicPartition, Long> waitingSince = new HashMap<>();
    /** Partitions paused after a transient failure, with when (System.nanoTime) to try again. */
    private final Map<TopicPartition, Long> retryAt = new HashMap<>();
    /** Partitions read since their offsets were last committed. */
    private final Set<TopicPartition> uncommitted = new HashSet<>();
    private final Backoff backoff = Backoff.standard();
    private final Map<String, JobStatus> statuses = new ConcurrentHashMap<>();
    private final List<Consumer<JobStatus>> listeners = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final JobRun.Effects effects = new JobRun.Effects() {
        @Override
        public void deadLetter(String reason, SourceRecord source, String jobId, Long seq) {
            TrainingLoop.this.deadLetter(reason, source, jobId, seq);
        }

        @Override
        public void announce(CheckpointEvent event) {
            KafkaSetup.sendAndWait(producer, settings.checkpointsTopic(), event.jobId(), event.encode());
        }
    };
    private final BrokerConnection connection = new BrokerConnection();

    /** @param setup run (and retried until it succeeds) before anything is consumed, e.g. creating topics */
    public TrainingLoop(TrainerSettings settings, BaseModels bases, ArtifactStore store, Runnable setup) {
        this.settings = settings;
        this.setup = setup;
        this.bases = bases;
        this.store = store;
        Properties consumer = new Properties();
        consumer.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 16);
        // A step of a large model takes seconds and a checkpoint more; the group must not evict us for that.
        consumer.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 30 * 60 * 1000);
        // A replica that dies without leaving holds its partitions until this runs out: keep it short.
        consumer.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, (int) settings.sessionTimeout().toMillis());
        consumer.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, (int) Math.max(500, settings.sessionTimeout().toMillis() / 4));
        consumer.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        this.batches = KafkaSetup.committedReader(settings.kafka(), settings.groupId(), consumer);
        this.jobsReader = KafkaSetup.committedReader(settings.kafka(), null, new Properties());
        // A dead letter carries its record: room for the largest one the loop reads, which is above Kafka's 1 MiB.
        Properties producer = new Properties();
        producer.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG,
                Math.max(1 << 20, DeadLetter.maxEncodedBytes(settings.maxRecordBytes())));
        this.producer = KafkaSetup.durableProducer(settings.kafka(), producer);
    }

    /** Every job's latest status. */
    public Collection<JobStatus> statuses() {
        return statuses.values();
    }

    public JobStatus status(String jobId) {
        return statuses.get(jobId);
    }

    public void onStatus(Consumer<JobStatus> listener) {
        listeners.add(listener);
    }

    /** True once the loop has talked to the broker and while polls keep succeeding. */
    public boolean connected() {
        return connection.connected();
    }

    @Override
    public void run() {
        try {
            connection.await(setup, running::get);
            boolean subscribed = false;
            while (running.get() && !subscribed) {
                try {
                    assignJobsTopic();
                    batches.subscribe(List.of(settings.batchesTopic()), new Rebalance());
                    subscribed = true;
                } catch (WakeupException e) {
                    throw e;
                } catch (RuntimeException e) {
                    LOG.warnf("training loop: %s; trying again", Failures.describe(e));
                    backoff.sleepAfterFailure();
                }
            }
            while (running.get()) {
                try {
                    pollOnce();
                } catch (WakeupException e) {
                    throw e;
                } catch (RuntimeException e) {
                    // Not one record's failure (those are handled in place) but the poll's, the job
                    // definitions' or the broker's: nothing moved past an unhandled record, so try again.
                    connection.lost();
                    LOG.errorf(e, "training loop: %s; trying again", Failures.describe(e));
                    backoff.sleepAfterFailure();
                }
            }
        } catch (WakeupException e) {
            if (running.get()) {
                throw e;
            }
        } catch (RuntimeException e) {
            connection.lost();
            LOG.error("training loop stopped", e);
            throw e;
        } finally {
            batches.close(Duration.ofSeconds(5));
            jobsReader.close(Duration.ofSeconds(5));
            producer.close(Duration.ofSeconds(5));
        }
    }

    private void pollOnce() {
        readJobs(waitingSince.isEmpty() ? Duration.ZERO : Duration.ofMillis(100));
        resumeWaitingPartitions();
        ConsumerRecords<byte[], byte[]> records = batches.poll(Duration.ofMillis(200));
        connection.check(batches, settings.batchesTopic());
        for (TopicPartition partition : records.partitions()) {
            for (ConsumerRecord<byte[], byte[]> record : records.records(partition)) {
                if (!handle(record, partition)) {
                    break;
                }
            }
            uncommitted.add(partition);
        }
        commit(uncommitted);
    }

    private void assignJobsTopic() {
        List<TopicPartition> partitions = new ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (partitions.isEmpty()) {
            List<PartitionInfo> infos = jobsReader.partitionsFor(settings.jobsTopic(), Duration.ofSeconds(10));
            if (infos != null) {
                infos.forEach(info -> partitions.add(new TopicPartition(info.topic(), info.partition())));
            }
            if (partitions.isEmpty() && System.nanoTime() > deadline) {
                throw new IllegalStateException("topic " + settings.jobsTopic() + " has no partitions");
            }
        }
        jobsReader.assign(partitions);
        jobsReader.seekToBeginning(partitions);
        readJobs(Duration.ofMillis(500));
    }

    private void readJobs(Duration timeout) {
        for (ConsumerRecord<byte[], byte[]> record : jobsReader.poll(timeout)) {
            try {
                readJob(record);
            } catch (RuntimeException e) {
                // A dead letter that could not be published: read this definition again on the next try.
                jobsReader.seek(new TopicPartition(record.topic(), record.partition()), record.offset());
                throw e;
            }
        }
    }

    private void readJob(ConsumerRecord<byte[], byte[]> record) {
        try {
            TrainingJob job = TrainingJob.parse(record.value());
            TrainingJob known = jobs.putIfAbsent(job.jobId(), job);
            if (known != null && !known.equals(job)) {
                jobs.put(job.jobId(), known);
                deadLetter("job " + job.jobId() + " was already defined differently; a job's definition never changes",
                        source(record), job.jobId(), null);
            }
            if (known == null) {
                publish(new JobStatus(job.jobId(), "WAITING", 0, job.totalSteps(), Double.NaN, 0, null, null,
                        0, 0, 0, 0, 0));
            }
        } catch (EventFormatException e) {
            deadLetter(e.getMessage(), source(record), null, null);
        }
    }

    /**
     * @return false when the partition now waits at this record (its job is not known yet, or a transient
     *         failure is waited out) or was sought back; the rest of the poll's records of it are then not handled
     */
    private boolean handle(ConsumerRecord<byte[], byte[]> record, TopicPartition partition) {
        try {
            boolean goOn = process(record, partition);
            backoff.succeeded();
            return goOn;
        } catch (RecordFailure failure) {
            return failure.transientFailure ? retryLater(failure, partition, record) : failJob(failure, partition, record);
        } catch (RuntimeException e) {
            // A dead letter that could not be published, say: the record is read and handled again.
            // Whatever it was, the record is not passed over: it is handled again after the backoff.
            return retryLater(new RecordFailure(keyOf(record), null, e, true), partition, record);
        }
    }

    /** A record's job ran into a failure: which job, the run that was dropped for it, and the cause. */
    private static final class RecordFailure extends RuntimeException {
        final String jobId;
        final JobRun dropped;
        final boolean transientFailure;

        RecordFailure(String jobId, JobRun dropped, Throwable cause, boolean transientFailure) {
            super(Failures.describe(cause), cause);
            this.jobId = jobId;
            this.dropped = dropped;
            this.transientFailure = transientFailure;
        }
    }

    /**
     * Pauses the partition and reads it again, after a backoff, from what the job's newest checkpoint does
     * not cover: the job's run is rebuilt from that checkpoint as after a crash, so nothing is lost or
     * applied twice, and the other jobs of the partition skip what they see again as duplicates.
     */
    private boolean retryLater(RecordFailure failure, TopicPartition partition, ConsumerRecord<byte[], byte[]> record) {
        Duration wait = backoff.failed();
        LOG.warnf(failure.getCause(), "%s-%d@%d%s: transient failure (%s); the partition pauses %d s and resumes from the "
                        + "job's last checkpoint", partition.topic(), partition.partition(), record.offset(),
                failure.jobId == null ? "" : " (job " + failure.jobId + ")", failure.getMessage(), wait.toSeconds());
        JobRun run = failure.jobId == null ? null : runs.remove(failure.jobId);
        run = run != null ? run : failure.dropped;
        rewind(partition, run == null ? record.offset() : Math.min(run.durableOffset(), record.offset()));
        batches.pause(List.of(partition));
        retryAt.put(partition, System.nanoTime() + wait.toNanos());
        if (failure.jobId != null) {
            setState(failure.jobId, "PAUSED: " + failure.getMessage() + "; retrying from the last checkpoint");
        }
        return false;
    }

    /**
     * The job cannot go on: every later batch of it is dead-lettered, and so is every one its run had taken
     * in since its newest checkpoint, by reading the partition again from there.
     */
    private boolean failJob(RecordFailure failure, TopicPartition partition, ConsumerRecord<byte[], byte[]> record) {
        LOG.errorf(failure.getCause(), "job %s failed at %s-%d@%d", failure.jobId, partition.topic(), partition.partition(),
                record.offset());
        runs.remove(failure.jobId);
        failed.put(failure.jobId, failure.getMessage());
        rewind(partition, failure.dropped == null ? record.offset()
                : Math.min(failure.dropped.durableOffset(), record.offset()));
        setState(failure.jobId, "FAILED: " + failure.getMessage());
        return false;
    }

    private void rewind(TopicPartition partition, long offset) {
        batches.seek(partition, offset);
        uncommitted.add(partition);
    }

    private void setState(String jobId, String state) {
        JobStatus previous = statuses.get(jobId);
        publish(previous == null ? new JobStatus(jobId, state, 0, 0, Double.NaN, 0, null, null, 0, 0, 0, 0, 0)
                : new JobStatus(jobId, state, previous.step(), previous.totalSteps(), previous.loss(), 0,
                        previous.lastCheckpointUri(), previous.lastCheckpointSha256(), previous.batchesReceived(),
                        previous.batchesApplied(), previous.batchesSkippedDuplicate(), previous.batchesDeadLettered(),
                        previous.batchesHeld()));
    }

    private static String keyOf(ConsumerRecord<byte[], byte[]> record) {
        return record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8);
    }

    private boolean process(ConsumerRecord<byte[], byte[]> record, TopicPartition partition) {
        SourceRecord source = source(record);
        String key = record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8);
        JobRun keyed = key == null ? null : runs.get(key);
        if (record.value() != null && record.value().length > settings.maxRecordBytes()) {
            reject("record of " + record.value().length + " bytes exceeds the limit of " + settings.maxRecordBytes(),
                    source, keyed, key);
            return true;
        }
        TrainingBatch batch;
        try {
            batch = TrainingBatch.parse(record.value());
        } catch (EventFormatException e) {
            reject(e.getMessage(), source, keyed, key);
            return true;
        }
        if (key != null && !key.equals(batch.jobId())) {
            reject("record key \"" + key + "\" is not its job_id \"" + batch.jobId() + "\"", source, keyed, key);
            return true;
        }
        String jobId = batch.jobId();
        if (failed.containsKey(jobId)) {
            deadLetter("job " + jobId + " failed: " + failed.get(jobId), source, jobId, batch.seq());
            return true;
        }
        JobRun run = runs.get(jobId);
        if (run == null) {
            TrainingJob job = jobs.get(jobId);
            if (job == null) {
                long since = waitingSince.getOrDefault(partition, System.nanoTime());
                if (System.nanoTime() - since < settings.unknownJobGrace().toNanos()) {
                    // The job's definition may still be on its way: wait for it here rather than skip ahead.
                    waitingSince.put(partition, since);
                    batches.pause(List.of(partition));
                    batches.seek(partition, record.offset());
                    return false;
                }
                waitingSince.remove(partition);
                deadLetter("no job " + jobId + " was defined on " + settings.jobsTopic() + " within "
                        + settings.unknownJobGrace().toSeconds() + " s", source, jobId, batch.seq());
                return true;
            }
            waitingSince.remove(partition);
            // Hashing, mapping (and quantizing) a large base takes minutes (an 8 B one: 16 GB to read): say so meanwhile.
            publish(new JobStatus(jobId, "STARTING: loading base model " + job.baseModel(), 0, job.totalSteps(),
                    Double.NaN, 0, null, null, 0, 0, 0, 0, 0));
            BaseModels.Base base;
            try {
                base = bases.get(job.baseModel());
            } catch (IOException | RuntimeException e) {
                // The models root is read-only configuration: a base that is not there now will not appear.
                throw new RecordFailure(jobId, null, new IOException("cannot start: " + Failures.describe(e), e), false);
            }
            try {
                run = JobRun.startOrResume(job, base, store, effects, settings.faults(), partition.partition(),
                        record.offset());
            } catch (IOException | RuntimeException e) {
                throw new RecordFailure(jobId, null, new IOException("cannot start: " + Failures.describe(e), e),
                        Failures.isTransient(e));
            }
            runs.put(jobId, run);
        }
        try {
            run.accept(batch, source);
        } catch (IOException | RuntimeException e) {
            runs.remove(jobId);
            throw new RecordFailure(jobId, run, e, Failures.isTransient(e));
        }
        publish(run.status());
        return true;
    }

    private void reject(String reason, SourceRecord source, JobRun keyed, String key) {
        if (keyed != null) {
            keyed.rejectUnreadable(reason, source);
            publish(keyed.status());
        } else {
            deadLetter(reason, source, key, null);
        }
    }

    private void resumeWaitingPartitions() {
        List<TopicPartition> resumed = new ArrayList<>(waitingSince.keySet());
        long now = System.nanoTime();
        retryAt.entrySet().removeIf(retry -> {
            boolean due = now - retry.getValue() >= 0;
            if (due) {
                resumed.add(retry.getKey());
            }
            return due;
        });
        resumed.removeIf(retryAt::containsKey);
        // Resuming re-reads the waiting record: it is then handled, or dead-lettered once its grace is over.
        if (!resumed.isEmpty()) {
            batches.resume(resumed);
        }
    }

    /**
     * Commits, per partition, the least offset any of its jobs still needs after a crash (the first
     * record its newest checkpoint does not cover), or the position when no job needs anything.
     */
    private void commit(Set<TopicPartition> partitions) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        partitions.retainAll(batches.assignment());
        for (TopicPartition partition : partitions) {
            long offset = batches.position(partition);
            for (JobRun run : runs.values()) {
                if (run.partition() == partition.partition()) {
                    offset = Math.min(offset, run.durableOffset());
                }
            }
            offsets.put(partition, new OffsetAndMetadata(offset));
        }
        if (offsets.isEmpty()) {
            return;
        }
        try {
            batches.commitSync(offsets);
            partitions.clear();
        } catch (WakeupException e) {
            throw e;
        } catch (KafkaException e) {
            // A rebalance took the partitions or the broker is away: the records after the last commit are
            // read again (here or by the new owner), where the checkpoints make them duplicates.
            LOG.warnf("commit of %s failed (%s); the next commit covers it", offsets.keySet(), Failures.describe(e));
        }
    }

    private final class Rebalance implements ConsumerRebalanceListener {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            commit(new HashSet<>(partitions));
            forget(partitions);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            // Runs start lazily at their jobs' first records, from the committed offsets.
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            forget(partitions);
        }

        /** Another replica takes these jobs over from their checkpoints; training them here too would race it. */
        private void forget(Collection<TopicPartition> partitions) {
            Set<Integer> gone = new HashSet<>();
            partitions.forEach(partition -> gone.add(partition.partition()));
            runs.values().removeIf(run -> gone.contains(run.partition()));
            partitions.forEach(waitingSince::remove);
            partitions.forEach(retryAt::remove);
            uncommitted.removeAll(partitions);
        }
    }

    private void deadLetter(String reason, SourceRecord source, String jobId, Long seq) {
        LOG.warnf("dead-lettered %s-%d@%d: %s", source.topic(), source.partition(), source.offset(), reason);
        KafkaSetup.sendAndWait(producer, settings.deadLetterTopic(), jobId, DeadLetter.encode(reason, source.topic(), source.partition(),
                source.offset(), source.key(), source.value(), jobId, seq, settings.maxRecordBytes()));
    }

    private void publish(JobStatus status) {
        statuses.put(status.jobId(), status);
        listeners.forEach(listener -> listener.accept(status));
    }

    private static SourceRecord source(ConsumerRecord<byte[], byte[]> record) {
        return new SourceRecord(record.topic(), record.partition(), record.offset(), record.key(), record.value());
    }

    @Override
    public void close() {
        running.set(false);
        batches.wakeup();
    }
}
