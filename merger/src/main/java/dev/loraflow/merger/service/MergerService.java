package dev.loraflow.merger.service;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.core.merge.LoraMerge.OutputDType;
import dev.loraflow.platform.events.DeadLetter;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.Map;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.apache.kafka.common.config.TopicConfig;
import org.eclipse.microprofile.config.Config;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/** Starts the merge loop on its own thread with the configured broker, topics, models, store and checks. */
@ApplicationScoped
public class MergerService {

    private static final Logger LOG = Logger.getLogger(MergerService.class);

    @ConfigProperty(name = "loraflow.merger.group-id")
    String groupId;
    @ConfigProperty(name = "loraflow.topics.checkpoints")
    String checkpointsTopic;
    @ConfigProperty(name = "loraflow.topics.models-merged")
    String mergedTopic;
    @ConfigProperty(name = "loraflow.topics.merge-failures")
    String failuresTopic;
    @ConfigProperty(name = "loraflow.topics.merge-dead-letters")
    String deadLetterTopic;
    @ConfigProperty(name = "loraflow.topics.partitions")
    int partitions;
    @ConfigProperty(name = "loraflow.models.root")
    Path modelsRoot;
    @ConfigProperty(name = "loraflow.store.root")
    Path storeRoot;
    @ConfigProperty(name = "loraflow.store.uri")
    Optional<String> storeUri;
    @ConfigProperty(name = "loraflow.merger.work-dir")
    Path workDirectory;
    @ConfigProperty(name = "loraflow.merger.trigger")
    String trigger;
    @ConfigProperty(name = "loraflow.merger.dtype")
    String dtype;
    @ConfigProperty(name = "loraflow.merger.opset")
    int opset;
    @ConfigProperty(name = "loraflow.merger.verify.tolerance")
    double tolerance;
    @ConfigProperty(name = "loraflow.merger.verify.threads")
    int verifyThreads;
    /** Test-only crash point, see {@link CrashPoint}. */
    @ConfigProperty(name = "loraflow.merger.fault")
    Optional<String> fault;

    @Inject
    MeterRegistry metrics;
    @Inject
    Config config;

    private KafkaClientSettings kafka;
    private MergeLoop loop;
    private Thread thread;
    private final AtomicReference<Double> lastVerificationError = new AtomicReference<>(Double.NaN);

    void start(@Observes StartupEvent event) throws IOException {
        kafka = KafkaClientSettings.fromConfig("loraflow.kafka", key -> config.getOptionalValue(key, String.class));
        MergerSettings settings = new MergerSettings(kafka, groupId, checkpointsTopic, mergedTopic, failuresTopic,
                deadLetterTopic, modelsRoot, storeRoot, workDirectory, Trigger.parse(trigger), OutputDType.parse(dtype), opset,
                tolerance, verifyThreads, CrashPoint.parse(fault.orElse(null)));
        clearWorkDirectory(workDirectory);
        ArtifactStore store = ArtifactStores.open(storeUri.orElse(storeRoot.toString()));
        loop = new MergeLoop(settings, store, new CheckpointMerger(settings, store),
                () -> KafkaSetup.ensureTopics(kafka,
                        Map.of(checkpointsTopic, partitions, mergedTopic, partitions, failuresTopic, partitions,
                                deadLetterTopic, 1),
                        // Room for a dead letter that carries a record of the broker's default 1 MiB limit.
                        Map.of(deadLetterTopic, Map.of(TopicConfig.MAX_MESSAGE_BYTES_CONFIG,
                                Integer.toString(DeadLetter.maxEncodedBytes(MergeLoop.MAX_RECORD_BYTES))))));
        registerMetrics();
        thread = Thread.ofPlatform().name("loraflow-merge-loop").unstarted(loop);
        thread.setUncaughtExceptionHandler((t, e) -> LOG.error("the merge loop died; liveness reports DOWN", e));
        thread.start();
        LOG.infof("merge loop started: %s, group %s, checkpoints on %s, trigger %s", kafka, groupId,
                checkpointsTopic, settings.trigger());
    }

    void stop(@Observes ShutdownEvent event) throws InterruptedException {
        if (loop != null) {
            loop.close();
            thread.join(Duration.ofSeconds(15));
        }
    }

    public MergeLoop loop() {
        return loop;
    }

    /** Where and as whom the service reaches Kafka. */
    public KafkaClientSettings kafka() {
        return kafka;
    }

    /** Ready while the loop runs and its last poll reached the broker. */
    public boolean ready() {
        return alive() && loop.connected();
    }

    /** The merge loop's thread runs: when it died (an Error), only a restart of the process brings it back. */
    public boolean alive() {
        return thread != null && thread.isAlive();
    }

    /** What a crash left in the work directory is never in the store and is never read again. */
    private static void clearWorkDirectory(Path directory) throws IOException {
        Files.createDirectories(directory);
        try (Stream<Path> leftovers = Files.list(directory)) {
            leftovers.forEach(CheckpointMerger::deleteTree);
        }
    }

    private void registerMetrics() {
        Timer merge = Timer.builder("loraflow.merger.merge").description("merging an adapter into its base, writing the directory")
                .register(metrics);
        Timer export = Timer.builder("loraflow.merger.export").description("exporting the merged model to ONNX").register(metrics);
        Timer verify = Timer.builder("loraflow.merger.verify").description("ONNX Runtime against the un-merged Java forward")
                .register(metrics);
        Counter merged = Counter.builder("loraflow.merger.checkpoints").tag("outcome", "merged")
                .description("checkpoints by what became of them").register(metrics);
        Counter failed = Counter.builder("loraflow.merger.checkpoints").tag("outcome", "failed")
                .description("checkpoints by what became of them").register(metrics);
        Gauge.builder("loraflow.merger.checkpoints.duplicate", loop, MergeLoop::duplicates)
                .description("checkpoints delivered or asked for again after their event was published").register(metrics);
        Gauge.builder("loraflow.merger.verification.max.abs.logit.error", lastVerificationError, AtomicReference::get)
                .description("max |Δlogit| of the last verification, passed or failed").register(metrics);
        loop.onOutcome(outcome -> {
            switch (outcome) {
                case CheckpointMerger.Merged(MergedModelEvent event) -> {
                    merged.increment();
                    merge.record(seconds(event.timings().mergeSeconds()));
                    export.record(seconds(event.timings().exportSeconds()));
                    verify.record(seconds(event.timings().verifySeconds()));
                    lastVerificationError.set(event.verification().maxAbsLogitError());
                }
                case CheckpointMerger.Failed failure -> {
                    failed.increment();
                    if (!Double.isNaN(failure.event().maxAbsLogitError())) {
                        lastVerificationError.set(failure.event().maxAbsLogitError());
                    }
                }
            }
        });
    }

    private static Duration seconds(double seconds) {
        return Duration.ofNanos(Math.round(seconds * 1e9));
    }
}
