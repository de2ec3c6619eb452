package dev.loraflow.trainer.service;

import dev.loraflow.platform.events.DeadLetter;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.ArtifactStores;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.function.ToDoubleFunction;
import org.apache.kafka.common.config.TopicConfig;
import org.eclipse.microprofile.config.Config;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/** Starts the training loop on its own thread with the configured broker, topics, models and store. */
@ApplicationScoped
public class TrainerService {

    private static final Logger LOG = Logger.getLogger(TrainerService.class);

    @ConfigProperty(name = "loraflow.trainer.group-id")
    String groupId;
    @ConfigProperty(name = "loraflow.topics.jobs")
    String jobsTopic;
    @ConfigProperty(name = "loraflow.topics.batches")
    String batchesTopic;
    @ConfigProperty(name = "loraflow.topics.checkpoints")
    String checkpointsTopic;
    @ConfigProperty(name = "loraflow.topics.training-dead-letters")
    String deadLetterTopic;
    @ConfigProperty(name = "loraflow.topics.batch-partitions")
    int batchPartitions;
    @ConfigProperty(name = "loraflow.models.root")
    Path modelsRoot;
    @ConfigProperty(name = "loraflow.trainer.base-cache-size")
    int baseCacheSize;
    @ConfigProperty(name = "loraflow.store.root")
    Path storeRoot;
    @ConfigProperty(name = "loraflow.store.uri")
    Optional<String> storeUri;
    @ConfigProperty(name = "loraflow.trainer.max-record-bytes")
    int maxRecordBytes;
    @ConfigProperty(name = "loraflow.trainer.unknown-job-grace")
    Duration unknownJobGrace;
    @ConfigProperty(name = "loraflow.trainer.session-timeout")
    Duration sessionTimeout;
    /** Test-only crash point, see {@link Faults}. */
    @ConfigProperty(name = "loraflow.trainer.fault")
    Optional<String> fault;

    @Inject
    MeterRegistry metrics;
    @Inject
    Config config;

    private KafkaClientSettings kafka;
    private TrainingLoop loop;
    private Thread thread;
    private BaseModels bases;

    void start(@Observes StartupEvent event) throws IOException {
        bases = new BaseModels(modelsRoot, baseCacheSize);
        kafka = KafkaClientSettings.fromConfig("loraflow.kafka", key -> config.getOptionalValue(key, String.class));
        TrainerSettings settings = new TrainerSettings(kafka, groupId, jobsTopic, batchesTopic, checkpointsTopic,
                deadLetterTopic, maxRecordBytes, unknownJobGrace, sessionTimeout, Faults.parse(fault.orElse(null)));
        loop = new TrainingLoop(settings, bases, ArtifactStores.open(storeUri.orElse(storeRoot.toString())),
                () -> KafkaSetup.ensureTopics(kafka, topics(), topicConfigs()));
        registerMetrics();
        thread = Thread.ofPlatform().name("loraflow-training-loop").unstarted(loop);
        thread.setUncaughtExceptionHandler((t, e) -> LOG.error("the training loop died; liveness reports DOWN", e));
        thread.start();
        LOG.infof("training loop started: %s, group %s, batches on %s", kafka, groupId, batchesTopic);
    }

    void stop(@Observes ShutdownEvent event) throws InterruptedException {
        if (loop != null) {
            loop.close();
            thread.join(Duration.ofSeconds(15));
        }
    }

    /** One partition keeps every job definition in one order; batches spread jobs over replicas. */
    private Map<String, Integer> topics() {
        return Map.of(jobsTopic, 1, batchesTopic, batchPartitions, checkpointsTopic, batchPartitions, deadLetterTopic, 1);
    }

    /** Batch records up to the loop's limit, and dead letters that carry one of them. */
    private Map<String, Map<String, String>> topicConfigs() {
        return Map.of(batchesTopic, Map.of(TopicConfig.MAX_MESSAGE_BYTES_CONFIG, Integer.toString(maxRecordBytes)),
                deadLetterTopic, Map.of(TopicConfig.MAX_MESSAGE_BYTES_CONFIG,
                        Integer.toString(DeadLetter.maxEncodedBytes(maxRecordBytes))));
    }

    public TrainingLoop loop() {
        return loop;
    }

    public BaseModels bases() {
        return bases;
    }

    public String jobsTopic() {
        return jobsTopic;
    }

    /** Where and as whom the service reaches Kafka. */
    public KafkaClientSettings kafka() {
        return kafka;
    }

    /** Ready while the loop runs and its last poll reached the broker. */
    public boolean ready() {
        return alive() && loop.connected();
    }

    /** The training loop's thread runs: when it died (an Error), only a restart of the process brings it back. */
    public boolean alive() {
        return thread != null && thread.isAlive();
    }

    private void registerMetrics() {
        gauge("loraflow.trainer.batches", "applied", JobStatus::batchesApplied);
        gauge("loraflow.trainer.batches", "skipped_duplicate", JobStatus::batchesSkippedDuplicate);
        gauge("loraflow.trainer.batches", "dead_lettered", JobStatus::batchesDeadLettered);
        gauge("loraflow.trainer.batches", "received", JobStatus::batchesReceived);
        Gauge.builder("loraflow.trainer.steps", loop, l -> l.statuses().stream().mapToLong(JobStatus::step).sum())
                .description("optimiser steps taken, over all jobs this replica runs").register(metrics);
        Gauge.builder("loraflow.trainer.tokens.per.second", loop,
                        l -> l.statuses().stream().mapToDouble(JobStatus::tokensPerSecond).sum())
                .description("training throughput of this replica's jobs").register(metrics);
    }

    private void gauge(String name, String outcome, ToDoubleFunction<JobStatus> value) {
        Gauge.builder(name, loop, l -> l.statuses().stream().mapToDouble(value).sum())
                .tag("outcome", outcome).description("batch records by what became of them").register(metrics);
    }
}
