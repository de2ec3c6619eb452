package dev.loraflow.merger.service;

import dev.loraflow.core.merge.LoraMerge.OutputDType;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.onnx.WeightQuantization;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What the merge loop needs from configuration (see application.properties; every value has an
 * environment-variable override there).
 *
 * @param workDirectory where merges and exports are staged before they go into the store
 * @param tolerance     the largest max |Δlogit| between ONNX Runtime and the un-merged Java model that passes
 * @param fault         test-only crash point, see {@link CrashPoint}; null in service
 * @param quantized     the quantized graphs to publish beside the F32 one
 */
public record MergerSettings(KafkaClientSettings kafka, String groupId, String checkpointsTopic, String mergedTopic,
                             String failuresTopic, String deadLetterTopic, Path modelsRoot, Path storeRoot, Path workDirectory,
                             Trigger trigger,
                             OutputDType dtype, int opset, double tolerance, int verifyThreads, CrashPoint fault,
                             QuantizedExports quantized) {

    /** Settings that publish the F32 graph only. */
    public MergerSettings(KafkaClientSettings kafka, String groupId, String checkpointsTopic, String mergedTopic,
                          String failuresTopic, String deadLetterTopic, Path modelsRoot, Path storeRoot, Path workDirectory,
                          Trigger trigger, OutputDType dtype, int opset, double tolerance, int verifyThreads,
                          CrashPoint fault) {
        this(kafka, groupId, checkpointsTopic, mergedTopic, failuresTopic, deadLetterTopic, modelsRoot, storeRoot,
                workDirectory, trigger, dtype, opset, tolerance, verifyThreads, fault, QuantizedExports.NONE);
    }

    /**
     * {@code loraflow.merger.quantize} (e.g. "int8,int4"), each graph checked on the held-out examples of
     * {@code verifyData} (JSONL, the formats of train --data) and published only when its loss is at most
     * {@code maxLossIncrease} of its precision above the F32 model's.
     *
     * @param verifyData required when any precision is asked for: no quantized graph is published unmeasured
     */
    public record QuantizedExports(List<WeightQuantization.Precision> precisions,
                                   Map<WeightQuantization.Precision, Double> maxLossIncrease, Path verifyData) {

        public static final QuantizedExports NONE = new QuantizedExports(List.of(), Map.of(), null);

        public QuantizedExports {
            precisions = List.copyOf(precisions);
            maxLossIncrease = Map.copyOf(maxLossIncrease);
            if (precisions.contains(WeightQuantization.Precision.F32)) {
                throw new IllegalArgumentException("loraflow.merger.quantize lists int8 and/or int4; the F32 graph is always published");
            }
            if (!precisions.isEmpty() && verifyData == null) {
                throw new IllegalArgumentException("loraflow.merger.quantize needs loraflow.merger.quantize.verify-data:"
                        + " held-out examples on which each quantized graph's loss is measured before it is published");
            }
            for (WeightQuantization.Precision precision : precisions) {
                if (!maxLossIncrease.containsKey(precision)) {
                    throw new IllegalArgumentException("no loss bound for " + precision.label());
                }
            }
        }

        /** Parses "int8,int4" (blank: none); the bounds are fractions, 0.01 = 1 %. */
        public static QuantizedExports parse(String precisions, double int8MaxLossIncrease, double int4MaxLossIncrease,
                                             Path verifyData) {
            List<WeightQuantization.Precision> parsed = new ArrayList<>();
            for (String label : precisions.split(",")) {
                if (!label.isBlank()) {
                    WeightQuantization.Precision precision = WeightQuantization.Precision.parse(label);
                    if (!parsed.contains(precision)) {
                        parsed.add(precision);
                    }
                }
            }
            return new QuantizedExports(parsed, Map.of(WeightQuantization.Precision.INT8, int8MaxLossIncrease,
                    WeightQuantization.Precision.INT4, int4MaxLossIncrease), verifyData);
        }
    }
}
