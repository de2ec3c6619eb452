package dev.loraflow.merger.service;

import dev.loraflow.core.merge.LoraMerge.OutputDType;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import java.nio.file.Path;

/**
 * What the merge loop needs from configuration (see application.properties; every value has an
 * environment-variable override there).
 *
 * @param workDirectory where merges and exports are staged before they go into the store
 * @param tolerance     the largest max |Δlogit| between ONNX Runtime and the un-merged Java model that passes
 * @param fault         test-only crash point, see {@link CrashPoint}; null in service
 */
public record MergerSettings(KafkaClientSettings kafka, String groupId, String checkpointsTopic, String mergedTopic,
                             String failuresTopic, String deadLetterTopic, Path modelsRoot, Path storeRoot, Path workDirectory,
                             Trigger trigger,
                             OutputDType dtype, int opset, double tolerance, int verifyThreads, CrashPoint fault) {}
