package dev.loraflow.trainer.service;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithName;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;

/**
 * The trainer's configuration, read straight from application.properties (every key has an environment-variable
 * override there: {@code loraflow.trainer.session-timeout} ← {@code LORAFLOW_TRAINER_SESSION_TIMEOUT});
 * docs/trainer.md lists the keys. The Kafka user ({@code loraflow.kafka.*}) and the jobs channel
 * ({@code mp.messaging.*}) are configured beside it, and the artifact store ({@code loraflow.store.*}) is
 * service-support's {@code StoreConfig}. {@link TrainerSettings} is what the training loop takes of it.
 */
@ConfigMapping(prefix = "loraflow")
public interface TrainerConfig {

    @WithName("trainer.group-id")
    String groupId();

    @WithName("topics.jobs")
    String jobsTopic();

    @WithName("topics.batches")
    String batchesTopic();

    @WithName("topics.checkpoints")
    String checkpointsTopic();

    @WithName("topics.training-dead-letters")
    String deadLetterTopic();

    /** Partitions of the batches (and checkpoints) topic when the trainer creates it. */
    @WithName("topics.batch-partitions")
    int batchPartitions();

    /** Base models are resolved by name inside this directory only. */
    @WithName("models.root")
    Path modelsRoot();

    /** Base models kept in memory, the least recently used dropped beyond it. */
    @WithName("trainer.base-cache-size")
    int baseCacheSize();

    @WithName("trainer.max-record-bytes")
    int maxRecordBytes();

    /** How long a batch waits for its job's definition before it is dead-lettered. */
    @WithName("trainer.unknown-job-grace")
    Duration unknownJobGrace();

    @WithName("trainer.session-timeout")
    Duration sessionTimeout();

    /** Test-only crash point, see {@link Faults}; unset in service. */
    @WithName("trainer.fault")
    Optional<String> fault();
}
