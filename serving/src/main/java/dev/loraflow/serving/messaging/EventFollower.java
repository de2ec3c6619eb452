package dev.loraflow.serving.messaging;

import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.reliability.Backoff;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import dev.loraflow.platform.store.SafePaths;
import dev.loraflow.serving.rest.Serving;
import io.micrometer.core.instrument.Counter;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.Priority;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import jakarta.interceptor.Interceptor;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.eclipse.microprofile.config.Config;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Serves what the platform announces: the newest model on {@code loraflow.models.merged} and, when
 * configured, each job's newest adapter from {@code loraflow.adapter.checkpoints}.
 *
 * <p>One thread and one consumer without a group: it assigns itself every partition and reads from the
 * beginning to the end offsets it found at start (discovery), serves the newest verified model of that
 * history, then keeps polling. Each announced model is opened through the artifact store, which checks
 * the artifact's digest and refuses URIs outside the store, and loaded as {@code POST /admin/models}
 * loads one: file SHA-256, warm-up, atomic switch, the old model closing when its requests end. Only a
 * version newer than the newest seen of that model is taken, so re-read and duplicate events change
 * nothing. A bad event (malformed record, missing artifact, digest mismatch, unloadable graph) leaves
 * the current model serving, is logged with the reason and counted in
 * {@code loraflow_serving_model_swaps_total{trigger="event"}}; the thread goes on with the next record.
 *
 * <p>Only the models named in {@code loraflow.serving.follow-model-names} are followed ({@code *}: any),
 * and an event counts only when the merger's outcome record in the store is that very event
 * ({@link MergeOutcomes#mismatch}): anyone who can write to the topic but not to the store (a forged
 * event, say with a huge {@code model_version}) is counted as {@code unverified}, and changes neither the
 * served model nor the newest version seen, so later real versions are still taken.
 * A transient failure of the newest announced model (the store unreadable for a while) is retried with a
 * growing backoff until it loads or a newer version is announced; the thread keeps following meanwhile.
 * The thread never ends on a failure but an Error, and then {@link #alive()} says so to the liveness probe.
 */
@ApplicationScoped
public class EventFollower {

    private static final Logger LOG = Logger.getLogger(EventFollower.class);
    private static final Duration POLL = Duration.ofMillis(200);

    @ConfigProperty(name = "loraflow.serving.follow-models", defaultValue = "false")
    boolean followModels;
    /** The announced models (job ids) to follow; {@code *} follows any; none configured follows none. */
    @ConfigProperty(name = "loraflow.serving.follow-model-names")
    Optional<List<String>> followModelNames;
    @ConfigProperty(name = "loraflow.serving.follow-adapters", defaultValue = "false")
    boolean followAdapters;
    @ConfigProperty(name = "loraflow.serving.adapter-base-model")
    Optional<String> adapterBaseModel;
    @ConfigProperty(name = "loraflow.serving.adapter-base-sha256")
    Optional<String> adapterBaseSha256;
    @ConfigProperty(name = "loraflow.topics.models-merged")
    String modelsTopic;
    @ConfigProperty(name = "loraflow.topics.checkpoints")
    String checkpointsTopic;
    @ConfigProperty(name = "loraflow.topics.partitions")
    int partitions;
    @ConfigProperty(name = "loraflow.store.root")
    Path storeRoot;
    @ConfigProperty(name = "loraflow.store.uri")
    Optional<String> storeUri;

    @Inject
    Serving serving;
    @Inject
    Config config;

    private final AtomicBoolean running = new AtomicBoolean(true);
    /** The highest model_version seen of each announced model: older and repeated events are skipped. */
    private final Map<String, Long> newestVersions = new HashMap<>();
    /** The highest checkpoint step seen of each job whose adapter is followed. */
    private final Map<String, Long> newestSteps = new HashMap<>();
    private KafkaClientSettings kafka;
    private ArtifactStore store;
    private KafkaConsumer<byte[], byte[]> consumer;
    private Thread thread;
    private final Backoff backoff = Backoff.standard();
    /** The newest announced model, when it failed to load for a transient reason: tried again at {@link #retryAt}. */
    private MergedModelEvent retrying;
    private long retryAt;

    /** After {@link Serving} has started (default priority), so that a configured model is served first. */
    void start(@Observes @Priority(Interceptor.Priority.APPLICATION + 1000) StartupEvent event) throws IOException {
        if (!followModels && !followAdapters) {
            return;
        }
        store = ArtifactStores.open(storeUri.orElse(storeRoot.toString()));
        kafka = KafkaClientSettings.fromConfig("loraflow.kafka", key -> config.getOptionalValue(key, String.class));
        if (followModels && followedNames().isEmpty()) {
            LOG.warn("loraflow.serving.follow-models is on but loraflow.serving.follow-model-names names no model;"
                    + " no announced model will be served (name the job ids to follow, or * for any)");
        }
        for (String outcome : List.of("loaded", "failed", "skipped", "malformed", "unverified")) {
            if (followModels) {
                serving.swaps(Serving.Trigger.EVENT, outcome);
            }
            if (followAdapters) {
                adapterLoads(outcome);
            }
        }
        Properties consumerConfig = new Properties();
        consumerConfig.put(ConsumerConfig.CLIENT_ID_CONFIG, "loraflow-serving-follower");
        // No group: every replica reads the whole history itself, and nothing is committed.
        consumer = KafkaSetup.committedReader(kafka, null, consumerConfig);
        thread = Thread.ofPlatform().name("loraflow-event-follower").unstarted(this::run);
        thread.setUncaughtExceptionHandler((t, e) -> LOG.error("the event follower died; no more models are followed", e));
        thread.start();
        LOG.infof("following %s%s on %s (store %s)", followModels ? modelsTopic + " (model " + followedName() + ")" : "",
                followAdapters ? (followModels ? " and " : "") + checkpointsTopic + " (adapters on base "
                        + adapterBaseModel.orElse("<none configured>") + ")" : "", kafka, store);
    }

    /** Before {@link Serving} closes the engine. */
    void stop(@Observes @Priority(Interceptor.Priority.APPLICATION) ShutdownEvent event) throws InterruptedException {
        if (thread != null) {
            running.set(false);
            consumer.wakeup();
            thread.join(Duration.ofSeconds(15));
        }
    }

    /** Nothing is followed, or the follower's thread runs. */
    public boolean alive() {
        return thread == null || thread.isAlive();
    }

    private List<String> followedNames() {
        return followModelNames.orElse(List.of()).stream().map(String::strip).filter(name -> !name.isEmpty()).toList();
    }

    private String followedName() {
        List<String> names = followedNames();
        return names.contains("*") ? "any" : names.isEmpty() ? "none" : String.join(", ", names);
    }

    private boolean followed(String model) {
        List<String> names = followedNames();
        return names.contains("*") || names.contains(model);
    }

    /** True when the merger's record in the store is this event; otherwise logged and counted as unverified or failed. */
    private boolean verifiedLineage(MergedModelEvent event) {
        try {
            Optional<String> mismatch = MergeOutcomes.mismatch(store, event);
            if (mismatch.isEmpty()) {
                return true;
            }
            serving.swaps(Serving.Trigger.EVENT, "unverified").increment();
            LOG.warnf("%s version %d is not what the merger recorded, ignored: %s", event.model(), event.modelVersion(),
                    mismatch.get());
        } catch (IOException e) {
            serving.swaps(Serving.Trigger.EVENT, "failed").increment();
            LOG.warnf("%s version %d not loaded, its merge outcome is unreadable: %s", event.model(), event.modelVersion(),
                    e.getMessage());
        }
        return false;
    }

    private Counter adapterLoads(String outcome) {
        return Counter.builder("loraflow.serving.adapter.loads")
                .description("adapters announced by checkpoint events, by what became of them").tag("outcome", outcome)
                .register(serving.meters());
    }

    private void run() {
        try {
            List<TopicPartition> assigned = awaitBroker();
            if (assigned.isEmpty()) {
                return;
            }
            consumer.assign(assigned);
            consumer.seekToBeginning(assigned);
            discover(assigned);
            while (running.get()) {
                try {
                    pollOnce();
                } catch (WakeupException e) {
                    throw e;
                } catch (RuntimeException e) {
                    // The poll's failure (the broker's), not a record's: the position did not move, poll again.
                    LOG.errorf(e, "following %s: %s; trying again", kafka, Failures.describe(e));
                    backoff.sleepAfterFailure();
                }
            }
        } catch (WakeupException e) {
            if (running.get()) {
                throw e;
            }
        } finally {
            consumer.close(Duration.ofSeconds(5));
        }
    }

    private void pollOnce() {
        if (retrying != null && System.nanoTime() - retryAt >= 0) {
            MergedModelEvent event = retrying;
            retrying = null;
            load(event);
        }
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(POLL)) {
            try {
                if (record.topic().equals(modelsTopic)) {
                    followModel(record);
                } else {
                    followAdapter(record);
                }
            } catch (RuntimeException e) {
                // One record's surprise must not stop the service from following the next.
                LOG.errorf(e, "record %s-%d@%d not followed: %s", record.topic(), record.partition(),
                        record.offset(), e.getMessage());
            }
        }
    }

    /** Creates the topics when missing and finds their partitions, retrying until the broker answers. */
    private List<TopicPartition> awaitBroker() {
        List<String> topics = new ArrayList<>();
        if (followModels) {
            topics.add(modelsTopic);
        }
        if (followAdapters) {
            topics.add(checkpointsTopic);
        }
        while (running.get()) {
            try {
                Map<String, Integer> wanted = new LinkedHashMap<>();
                topics.forEach(topic -> wanted.put(topic, partitions));
                KafkaSetup.ensureTopics(kafka, wanted);
                List<TopicPartition> assigned = new ArrayList<>();
                for (String topic : topics) {
                    List<PartitionInfo> partitionsOfTopic = consumer.partitionsFor(topic, Duration.ofSeconds(10));
                    if (partitionsOfTopic.isEmpty()) {
                        // Just created: the broker's metadata does not list it yet.
                        throw new IllegalStateException("no partitions of " + topic + " known yet");
                    }
                    for (PartitionInfo partition : partitionsOfTopic) {
                        assigned.add(new TopicPartition(topic, partition.partition()));
                    }
                }
                return assigned;
            } catch (RuntimeException e) {
                LOG.warnf("waiting for Kafka at %s: %s", kafka, e.getMessage());
                sleep(Duration.ofSeconds(2));
            }
        }
        return List.of();
    }

    /** Reads every partition up to the end offsets found now and serves the newest of what was announced. */
    private void discover(List<TopicPartition> assigned) {
        long start = System.nanoTime();
        Map<TopicPartition, Long> ends = consumer.endOffsets(assigned, Duration.ofSeconds(30));
        List<ConsumerRecord<byte[], byte[]>> history = new ArrayList<>();
        while (running.get() && !reached(ends)) {
            consumer.poll(POLL).forEach(history::add);
        }
        List<MergedModelEvent> models = new ArrayList<>();
        Map<MergedModelEvent, Long> timestamps = new HashMap<>();
        Map<String, CheckpointEvent> newestCheckpoints = new LinkedHashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : history) {
            if (record.topic().equals(modelsTopic)) {
                MergedModelEvent event = parseModel(record);
                // An unverified event is never served, nor may it raise the version later events must exceed.
                if (event != null && followed(event.model()) && event.verification().passed() && verifiedLineage(event)) {
                    models.add(event);
                    timestamps.merge(event, record.timestamp(), Math::max);
                    newestVersions.merge(event.model(), event.modelVersion(), Math::max);
                }
            } else {
                CheckpointEvent checkpoint = parseCheckpoint(record);
                if (checkpoint != null && baseMatches(checkpoint)) {
                    newestSteps.merge(checkpoint.jobId(), checkpoint.step(), Math::max);
                    newestCheckpoints.merge(checkpoint.jobId(), checkpoint,
                            (seen, next) -> next.step() > seen.step() ? next : seen);
                }
            }
        }
        LOG.infof("read %d records of history in %.1f s", history.size(), (System.nanoTime() - start) / 1e9);
        if (!models.isEmpty()) {
            serveNewest(models, timestamps);
        } else if (followModels) {
            LOG.infof("no model announced on %s yet for %s", modelsTopic, followedName());
        }
        newestCheckpoints.values().forEach(this::loadAdapter);
    }

    private boolean reached(Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
            if (consumer.position(end.getKey()) < end.getValue()) {
                return false;
            }
        }
        return true;
    }

    /**
     * The newest of the announced models: of the followed model, or with none configured of the model
     * announced last; its highest model_version, ties to the latest record. When it cannot be loaded the
     * next newest is tried, so that a bad announcement does not leave the service without a model.
     */
    private void serveNewest(List<MergedModelEvent> models, Map<MergedModelEvent, Long> timestamps) {
        String model = models.stream().max(Comparator.comparing(timestamps::get)).orElseThrow().model();
        List<MergedModelEvent> candidates = models.stream().filter(event -> event.model().equals(model)).distinct()
                .sorted(Comparator.comparingLong(MergedModelEvent::modelVersion).thenComparing(timestamps::get).reversed())
                .toList();
        for (MergedModelEvent candidate : candidates) {
            if (load(candidate)) {
                return;
            }
        }
        LOG.warnf("none of the %d announced versions of %s could be loaded", candidates.size(), model);
    }

    private void followModel(ConsumerRecord<byte[], byte[]> record) {
        MergedModelEvent event = parseModel(record);
        if (event == null) {
            return;
        }
        if (!followed(event.model())) {
            serving.swaps(Serving.Trigger.EVENT, "skipped").increment();
            LOG.debugf("%s is not the followed model %s; skipped", event.model(), followedName());
            return;
        }
        if (!event.verification().passed()) {
            load(event);
            return;
        }
        Long newest = newestVersions.get(event.model());
        if (newest != null && event.modelVersion() <= newest) {
            serving.swaps(Serving.Trigger.EVENT, "skipped").increment();
            LOG.infof("%s version %d is not newer than version %d, seen before; skipped", event.model(),
                    event.modelVersion(), newest);
            return;
        }
        if (!verifiedLineage(event)) {
            return;
        }
        newestVersions.put(event.model(), event.modelVersion());
        retrying = null;
        load(event);
    }

    /** Opens both artifacts through the store (digests checked) and swaps to the graph; false, logged and counted, when it fails. */
    private boolean load(MergedModelEvent event) {
        String what = event.model() + " version " + event.modelVersion();
        if (!event.verification().passed()) {
            serving.swaps(Serving.Trigger.EVENT, "failed").increment();
            LOG.warnf("%s not loaded, the current model keeps serving: its event says verification did not pass", what);
            return false;
        }
        try {
            Path onnxArtifact = store.open(URI.create(event.onnxUri()), event.onnxSha256());
            Path onnx = SafePaths.resolveInside(onnxArtifact, event.onnxFile(), "ONNX file");
            // config.json and the tokenizer are in the merged Hugging Face directory, the graph's source.
            Path merged = store.open(URI.create(event.mergedUri()), event.mergedSha256());
            serving.load(onnx, merged, event.onnxFileSha256(), Serving.Trigger.EVENT,
                    new Serving.Origin(event.model(), event.modelVersion()));
            backoff.succeeded();
            return true;
        } catch (ModelLoadException e) {
            LOG.warnf("%s not loaded, the current model keeps serving: %s", what, e.getMessage());
        } catch (IOException | IllegalArgumentException e) {
            serving.swaps(Serving.Trigger.EVENT, "failed").increment();
            if (Failures.isTransient(e)) {
                Duration wait = backoff.failed();
                if (retrying == null || event.modelVersion() > retrying.modelVersion()) {
                    retrying = event;
                }
                retryAt = System.nanoTime() + wait.toNanos();
                LOG.warnf("%s not loaded, the current model keeps serving: %s; trying again in %d s", what,
                        e.getMessage(), wait.toSeconds());
                return false;
            }
            LOG.warnf("%s not loaded, the current model keeps serving: %s", what, e.getMessage());
        }
        return false;
    }

    private MergedModelEvent parseModel(ConsumerRecord<byte[], byte[]> record) {
        try {
            return MergedModelEvent.parse(record.value());
        } catch (EventFormatException e) {
            serving.swaps(Serving.Trigger.EVENT, "malformed").increment();
            LOG.warnf("skipping record %s-%d@%d: %s", record.topic(), record.partition(), record.offset(), e.getMessage());
            return null;
        }
    }

    private void followAdapter(ConsumerRecord<byte[], byte[]> record) {
        CheckpointEvent checkpoint = parseCheckpoint(record);
        if (checkpoint == null) {
            return;
        }
        if (!baseMatches(checkpoint)) {
            adapterLoads("skipped").increment();
            LOG.infof("checkpoint %s step %d is of base %s (%s), not of the served base %s; adapter not loaded",
                    checkpoint.jobId(), checkpoint.step(), checkpoint.baseModel(), checkpoint.baseModelSha256(),
                    adapterBaseModel.filter(name -> !name.isBlank()).orElse("(loraflow.serving.adapter-base-model is not set)"));
            return;
        }
        Long newest = newestSteps.get(checkpoint.jobId());
        if (newest != null && checkpoint.step() <= newest) {
            adapterLoads("skipped").increment();
            LOG.infof("checkpoint %s step %d is not newer than step %d, seen before; skipped", checkpoint.jobId(),
                    checkpoint.step(), newest);
            return;
        }
        newestSteps.put(checkpoint.jobId(), checkpoint.step());
        loadAdapter(checkpoint);
    }

    private void loadAdapter(CheckpointEvent checkpoint) {
        try {
            Path adapter = store.open(URI.create(checkpoint.adapterUri()), checkpoint.adapterSha256());
            serving.loadAdapter(checkpoint.jobId(), adapter);
            adapterLoads("loaded").increment();
            LOG.infof("adapter %s loaded from its checkpoint at step %d", checkpoint.jobId(), checkpoint.step());
        } catch (IOException | ModelLoadException | IllegalArgumentException e) {
            adapterLoads("failed").increment();
            LOG.warnf("adapter %s (step %d) not loaded: %s", checkpoint.jobId(), checkpoint.step(), e.getMessage());
        }
    }

    /** The checkpoint's base is the one the served un-merged graph was exported from, by name and, when configured, digest. */
    private boolean baseMatches(CheckpointEvent checkpoint) {
        return adapterBaseModel.filter(name -> name.equals(checkpoint.baseModel())).isPresent()
                && adapterBaseSha256.filter(sha -> !sha.isBlank()).map(sha -> sha.equals(checkpoint.baseModelSha256()))
                        .orElse(true);
    }

    private CheckpointEvent parseCheckpoint(ConsumerRecord<byte[], byte[]> record) {
        try {
            return CheckpointEvent.parse(record.value());
        } catch (EventFormatException e) {
            adapterLoads("malformed").increment();
            LOG.warnf("skipping record %s-%d@%d: %s", record.topic(), record.partition(), record.offset(), e.getMessage());
            return null;
        }
    }

    private static void sleep(Duration duration) {
        try {
            Thread.sleep(duration);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
