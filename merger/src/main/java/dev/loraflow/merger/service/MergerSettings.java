package dev.loraflow.merger.service;

import dev.loraflow.core.merge.LoraMerge.OutputDType;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithConverter;
import io.smallrye.config.WithName;
import java.nio.file.Path;
import org.eclipse.microprofile.config.spi.Converter;

/**
 * The merger's configuration, read straight from application.properties (every key has an environment-variable
 * override there: {@code loraflow.merger.trigger} ← {@code LORAFLOW_MERGER_TRIGGER}); docs/merger.md lists the keys.
 * The Kafka user ({@code loraflow.kafka.*}) and the channels ({@code mp.messaging.*}) are configured beside it.
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

    @WithName("store.root")
    Path storeRoot();

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
}
