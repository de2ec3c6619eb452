package dev.loraflow.merger.service;

import dev.loraflow.core.merge.LoraMerge.OutputDType;
import dev.loraflow.onnx.WeightQuantization;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithConverter;
import io.smallrye.config.WithName;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.eclipse.microprofile.config.spi.Converter;

/**
 * The merger's configuration, read straight from application.properties (every key has an environment-variable
 * override there: {@code loraflow.merger.trigger} ← {@code LORAFLOW_MERGER_TRIGGER}); docs/merger.md lists the keys.
 * The Kafka user ({@code loraflow.kafka.*}), the channels ({@code mp.messaging.*}) and the artifact store
 * ({@code loraflow.store.*}, service-support's {@code StoreConfig}) are configured beside it.
 */
@ConfigMapping(prefix = "loraflow")
public interface MergerSettings {

    @WithName("topics.checkpoints")
    String checkpointsTopic();

    @WithName("topics.models-merged")
    String mergedTopic();

    @WithName("topics.merge-failures")
    String failuresTopic();

    /** Checkpoint records that cannot be read go here with their reason (the connector's dead-letter queue). */
    @WithName("topics.merge-dead-letters")
    String deadLetterTopic();

    /** Partitions of the topics when the merger creates them. */
    @WithName("topics.partitions")
    int partitions();

    /** Base models are resolved by name inside this directory only. */
    @WithName("models.root")
    Path modelsRoot();

    /** Where merges and exports are staged before they go into the store; emptied at startup. */
    @WithName("merger.work-dir")
    Path workDirectory();

    @WithName("merger.trigger")
    @WithConverter(TriggerConverter.class)
    Trigger trigger();

    @WithName("merger.dtype")
    @WithConverter(DTypeConverter.class)
    OutputDType dtype();

    @WithName("merger.opset")
    int opset();

    /** The largest max |Δlogit| between ONNX Runtime and the un-merged Java model that passes. */
    @WithName("merger.verify.tolerance")
    double tolerance();

    @WithName("merger.verify.threads")
    int verifyThreads();

    /** Test-only crash point, see {@link CrashPoint}; {@code none} in service. */
    @WithName("merger.fault")
    @WithConverter(CrashPointConverter.class)
    CrashPoint fault();

    /** int8, int4 or both, comma-separated: quantized graphs published beside the F32 one; none when absent. */
    @WithName("merger.quantize")
    Optional<String> quantize();

    @WithName("merger.quantize.max-loss-increase.int8")
    double int8MaxLossIncrease();

    @WithName("merger.quantize.max-loss-increase.int4")
    double int4MaxLossIncrease();

    @WithName("merger.quantize.verify-data")
    Optional<Path> quantizeVerifyData();

    /** The quantized graphs to publish beside the F32 one, checked as a whole (the service reads it at start). */
    default QuantizedExports quantized() {
        return QuantizedExports.parse(quantize().orElse(""), int8MaxLossIncrease(), int4MaxLossIncrease(),
                quantizeVerifyData().orElse(null));
    }

    final class TriggerConverter implements Converter<Trigger> {
        @Override
        public Trigger convert(String value) {
            return Trigger.parse(value);
        }
    }

    final class DTypeConverter implements Converter<OutputDType> {
        @Override
        public OutputDType convert(String value) {
            return OutputDType.parse(value);
        }
    }

    final class CrashPointConverter implements Converter<CrashPoint> {
        @Override
        public CrashPoint convert(String value) {
            return CrashPoint.parse(value);
        }
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
