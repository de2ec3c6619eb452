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

    /** The ONNX graphs published for each merged model: f32, int8, int4, comma-separated, at least one. */
    @WithName("merger.graphs")
    String graphList();

    /**
     * int8, int4 or both: quantized graphs published beside those of {@link #graphList} (the key from before
     * {@code merger.graphs}, when the F32 graph was always published; none when absent).
     */
    @WithName("merger.quantize")
    Optional<String> quantize();

    @WithName("merger.quantize.max-loss-increase.int8")
    double int8MaxLossIncrease();

    @WithName("merger.quantize.max-loss-increase.int4")
    double int4MaxLossIncrease();

    @WithName("merger.quantize.verify-data")
    Optional<Path> quantizeVerifyData();

    /** The graphs to publish, checked as a whole (the service reads it at start). */
    default Graphs graphs() {
        return Graphs.parse(graphList() + "," + quantize().orElse(""), int8MaxLossIncrease(), int4MaxLossIncrease(),
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
     * {@code loraflow.merger.graphs} (e.g. "f32,int4", or "int4" alone): the F32 graph verified against the Java
     * forward within the logit tolerance; each quantized graph checked on the held-out examples of {@code verifyData}
     * (JSONL, the formats of train --data) and published only when its loss is at most {@code maxLossIncrease} of its
     * precision above the F32 model's.
     *
     * @param precisions in the order of {@link WeightQuantization.Precision}, the most precise first: the first
     *                   published is the graph the merged event names for serving
     * @param verifyData required when any quantized graph is asked for: none is published unmeasured
     */
    public record Graphs(List<WeightQuantization.Precision> precisions,
                         Map<WeightQuantization.Precision, Double> maxLossIncrease, Path verifyData) {

        public Graphs {
            precisions = precisions.stream().distinct().sorted().toList();
            maxLossIncrease = Map.copyOf(maxLossIncrease);
            if (precisions.isEmpty()) {
                throw new IllegalArgumentException("loraflow.merger.graphs names no graph: list f32, int8 and/or int4");
            }
            boolean quantized = precisions.stream().anyMatch(precision -> precision != WeightQuantization.Precision.F32);
            if (quantized && verifyData == null) {
                throw new IllegalArgumentException("an int8 or int4 graph (loraflow.merger.graphs) needs"
                        + " loraflow.merger.quantize.verify-data: held-out examples on which each quantized graph's loss"
                        + " is measured before it is published");
            }
            for (WeightQuantization.Precision precision : precisions) {
                if (precision != WeightQuantization.Precision.F32 && !maxLossIncrease.containsKey(precision)) {
                    throw new IllegalArgumentException("no loss bound for " + precision.label());
                }
            }
        }

        /** Parses "f32,int8,int4" (blank entries skipped, repeats ignored); the bounds are fractions, 0.01 = 1 %. */
        public static Graphs parse(String precisions, double int8MaxLossIncrease, double int4MaxLossIncrease,
                                   Path verifyData) {
            List<WeightQuantization.Precision> parsed = new ArrayList<>();
            for (String label : precisions.split(",")) {
                if (!label.isBlank()) {
                    parsed.add(WeightQuantization.Precision.parse(label.strip()));
                }
            }
            return new Graphs(parsed, Map.of(WeightQuantization.Precision.INT8, int8MaxLossIncrease,
                    WeightQuantization.Precision.INT4, int4MaxLossIncrease), verifyData);
        }

        public boolean includesF32() {
            return precisions.contains(WeightQuantization.Precision.F32);
        }

        public boolean includesQuantized() {
            return !precisions.equals(List.of(WeightQuantization.Precision.F32));
        }

        /** e.g. "f32+int4". */
        public String describe() {
            return String.join("+", precisions.stream().map(WeightQuantization.Precision::label).toList());
        }
    }
}
