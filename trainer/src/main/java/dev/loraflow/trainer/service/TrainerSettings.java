package dev.loraflow.trainer.service;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import java.time.Duration;

/**
 * What the training loop needs: the part of {@link TrainerConfig} it reads, with the Kafka user and the parsed
 * fault, as a plain value (the loop runs, and is tested, without the framework).
 */
public record TrainerSettings(KafkaClientSettings kafka, String groupId, String jobsTopic, String batchesTopic,
                              String checkpointsTopic, String deadLetterTopic, int maxRecordBytes,
                              Duration unknownJobGrace, Duration sessionTimeout, Faults faults) {

    public static TrainerSettings of(TrainerConfig config, KafkaClientSettings kafka) {
        return new TrainerSettings(kafka, config.groupId(), config.jobsTopic(), config.batchesTopic(),
                config.checkpointsTopic(), config.deadLetterTopic(), config.maxRecordBytes(), config.unknownJobGrace(),
                config.sessionTimeout(), Faults.parse(config.fault().orElse(null)));
    }
}
