package dev.loraflow.merger.service;

import dev.loraflow.merger.messaging.DeadLetterSerializer;
import dev.loraflow.platform.events.DeadLetter;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.kafka.BrokerConnection;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.service.support.KafkaConnectorSettings;
import dev.loraflow.service.support.StoreConfig;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.reactive.messaging.MutinyEmitter;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.apache.kafka.common.config.TopicConfig;
import org.eclipse.microprofile.config.Config;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Message;
import org.jboss.logging.Logger;

/**
 * Wires the merger: its settings, the store, {@link Merges} (which messaging's {@code CheckpointConsumer} feeds
 * and whose events go out through the {@value #OUTCOMES} channel), and the topics it creates when missing.
 */
@ApplicationScoped
public class MergerService {

    private static final Logger LOG = Logger.getLogger(MergerService.class);
    /** The outgoing channel of merged-model and merge-failure events (each message names its topic). */
    static final String OUTCOMES = "merge-outcomes";

    @Inject
    MergerSettings settings;
    @Inject
    StoreConfig storeConfig;
    @Inject
    MeterRegistry metrics;
    @Inject
    Config config;
    @Inject
    @Channel(OUTCOMES)
    MutinyEmitter<byte[]> outcomes;

    private KafkaClientSettings kafka;
    private volatile Merges merges;
    /** Counted down once {@link #start} is done: the connector may deliver a record before that. */
    private final CountDownLatch started = new CountDownLatch(1);
    private final CountDownLatch topicsReady = new CountDownLatch(1);
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final AtomicReference<Double> lastVerificationError = new AtomicReference<>(Double.NaN);

    void start(@Observes StartupEvent event) throws IOException {
        kafka = KafkaConnectorSettings.of(config);
        settings.graphs(); // a graphs or quantize setting that cannot be honoured stops the start here, naming its key
        clearWorkDirectory(settings.workDirectory());
        ArtifactStore store = storeConfig.open();
        merges = new Merges(settings, store, new CheckpointMerger(settings, store), this::publish);
        registerMetrics();
        // The broker may not be there yet: the topics are created as soon as it is; records wait for that.
        Thread.ofPlatform().name("loraflow-merger-topics").start(() -> {
            new BrokerConnection().await(this::ensureTopics, running::get);
            topicsReady.countDown();
        });
        started.countDown();
        LOG.infof("merger started: %s, checkpoints on %s, trigger %s", kafka, settings.checkpointsTopic(), settings.trigger());
    }

    void stop(@Observes ShutdownEvent event) {
        running.set(false);
        if (merges != null) {
            merges.close();
        }
    }

    private void ensureTopics() {
        int partitions = settings.partitions();
        KafkaSetup.ensureTopics(kafka,
                Map.of(settings.checkpointsTopic(), partitions, settings.mergedTopic(), partitions, settings.failuresTopic(),
                        partitions, settings.deadLetterTopic(), 1),
                // Room for a dead letter that carries a record of the broker's default 1 MiB limit.
                Map.of(settings.deadLetterTopic(), Map.of(TopicConfig.MAX_MESSAGE_BYTES_CONFIG,
                        Integer.toString(DeadLetter.maxEncodedBytes(DeadLetterSerializer.MAX_RECORD_BYTES)))));
    }

    /** Sends through the connector and returns once the broker acknowledged the event (acks=all). */
    private void publish(String topic, String key, byte[] value) {
        outcomes.sendMessageAndAwait(Message.of(value)
                .addMetadata(OutgoingKafkaRecordMetadata.<String>builder().withTopic(topic).withKey(key).build()));
    }

    /** Returns once the merger's topics exist; a record waits here while the broker is away at startup. */
    public void awaitTopics() {
        await(topicsReady);
    }

    /**
     * The merges, once the service has started: a record the connector delivers before (opening an S3 store takes
     * a while, and records wait on the topic after a restart) waits here.
     *
     * @throws Merges.Stopping when the service stops first
     */
    public Merges awaitMerges() {
        await(started);
        return merges;
    }

    private void await(CountDownLatch latch) {
        try {
            while (!latch.await(1, TimeUnit.SECONDS)) {
                if (!running.get()) {
                    throw new Merges.Stopping();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Merges.Stopping();
        }
    }

    /** True once the merger's topics exist. */
    public boolean topicsReady() {
        return topicsReady.getCount() == 0;
    }

    public Merges merges() {
        return merges;
    }

    /** Where and as whom the service reaches Kafka. */
    public KafkaClientSettings kafka() {
        return kafka;
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
        Gauge.builder("loraflow.merger.checkpoints.duplicate", merges, Merges::duplicates)
                .description("checkpoints delivered or asked for again after their event was published").register(metrics);
        Gauge.builder("loraflow.merger.verification.max.abs.logit.error", lastVerificationError, AtomicReference::get)
                .description("max |Δlogit| of the last verification, passed or failed").register(metrics);
        merges.onOutcome(outcome -> {
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
