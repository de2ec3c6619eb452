package dev.loraflow.trainer.service;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import java.time.Duration;

/**
 * What the training loop needs from configuration (see application.properties; every value has an
 * environment-variable override there).
 */
public record TrainerSettings(KafkaClientSettings kafka, String groupId, String jobsTopic, String batchesTopic,
                              String checkpointsTopic, String deadLetterTopic, int maxRecordBytes,
                              Duration unknownJobGrace, Duration sessionTimeout, Faults faults) {}
