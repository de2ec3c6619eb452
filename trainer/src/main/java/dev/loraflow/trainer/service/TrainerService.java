package dev.loraflow.trainer.service;

import dev.loraflow.platform.events.DeadLetter;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.service.support.KafkaConnectorSettings;
import dev.loraflow.service.support.StoreConfig;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.function.ToDoubleFunction;
import org.apache.kafka.common.config.TopicConfig;
import org.eclipse.microprofile.config.Config;
import org.jboss.logging.Logger;

/** Starts the training loop on its own thread with the configured broker, topics, models and store. */
@ApplicationScoped
public class TrainerService {

    private static final Logger LOG = Logger.getLogger(TrainerService.class);

    @Inject
    TrainerConfig settings;
    @Inject
    StoreConfig store;
    @Inject
    MeterRegistry metrics;
    @Inject
    Config config;

    private KafkaClientSettings kafka;
    private TrainingLoop loop;
    private Thread thread;
    private BaseModels bases;

    void start(@Observes StartupEvent event) throws IOException {
        bases = new BaseModels(settings.modelsRoot(), settings.baseCacheSize());
        kafka = KafkaConnectorSettings.of(config);
        loop = new TrainingLoop(TrainerSettings.of(settings, kafka), bases, store.open(),
                () -> KafkaSetup.ensureTopics(kafka, topics(), topicConfigs()));
        registerMetrics();
        thread = Thread.ofPlatform().name("loraflow-training-loop").unstarted(loop);
        thread.setUncaughtExceptionHandler((t, e) -> LOG.error("the training loop died; liveness reports DOWN", e));
        thread.start();
        LOG.infof("training loop started: %s, group %s, batches on %s", kafka, settings.groupId(), settings.batchesTopic());
    }

    void stop(@Observes ShutdownEvent event) throws InterruptedException {
        if (loop != null) {
            loop.close();
            thread.join(Duration.ofSeconds(15));
        }
    }

    /** One partition keeps every job definition in one order; batches spread jobs over replicas. */
    private Map<String, Integer> topics() {
        return Map.of(settings.jobsTopic(), 1, settings.batchesTopic(), settings.batchPartitions(), settings.checkpointsTopic(),
                settings.batchPartitions(), settings.deadLetterTopic(), 1);
    }

    /** Batch records up to the loop's limit, and dead letters that carry one of them. */
    private Map<String, Map<String, String>> topicConfigs() {
        return Map.of(settings.batchesTopic(), Map.of(TopicConfig.MAX_MESSAGE_BYTES_CONFIG,
                        Integer.toString(settings.maxRecordBytes())),
                settings.deadLetterTopic(), Map.of(TopicConfig.MAX_MESSAGE_BYTES_CONFIG,
                        Integer.toString(DeadLetter.maxEncodedBytes(settings.maxRecordBytes()))));
    }

    public TrainingLoop loop() {
        return loop;
    }

    public BaseModels bases() {
        return bases;
    }

    public String jobsTopic() {
        return settings.jobsTopic();
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
