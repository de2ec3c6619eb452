package dev.loraflow.serving.messaging;

import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.reliability.Backoff;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.SafePaths;
import dev.loraflow.service.support.StoreConfig;
import dev.loraflow.serving.service.Serving;
import dev.loraflow.serving.service.ServingConfig;
import io.micrometer.core.instrument.Counter;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.common.annotation.Blocking;
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
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.TopicPartition;
import org.eclipse.microprofile.reactive.messaging.Incoming;
import org.jboss.logging.Logger;

/**
 * Serves what the platform announces: each job's newest model on {@code loraflow.models.merged}, under the job's
 * id, and, when configured, each job's newest adapter from {@code loraflow.adapter.checkpoints}.
 *
 * <p>Two SmallRye Reactive Messaging channels of the Kafka connector, {@value #MODELS} and {@value #CHECKPOINTS}
 * (application.properties), each a consumer in a group of its own per replica ({@link FollowerKafka}): every
 * replica reads the whole history itself and nothing is committed. At start-up ({@link StartupHistory}) the
 * records below the end offsets found when the partitions were assigned are collected, and the newest verified
 * model of each followed name in that history is served; then each record is followed as it comes. Each
 * announced model is opened through the artifact store, which checks
 * the artifact's digest and refuses URIs outside the store, and loaded as {@code POST /admin/models}
 * loads one: file SHA-256, warm-up, atomic switch, the old model closing when its requests end. Only a
 * version newer than the newest seen of that model is taken, so re-read and duplicate events change
 * nothing. A bad event (malformed record, missing artifact, digest mismatch, unloadable graph) leaves
 * the current model serving, is logged with the reason and counted in
 * {@code loraflow_serving_model_swaps_total{trigger="event"}}; the channel goes on with the next record.
 *
 * <p>Only the models named in {@code loraflow.serving.follow-model-names} are followed ({@code *}: any),
 * and an event counts only when the merger's outcome record in the store is that very event
 * ({@link MergeOutcomes#mismatch}): anyone who can write to the topic but not to the store (a forged
 * event, say with a huge {@code model_version}) is counted as {@code unverified}, and changes neither the
 * served model nor the newest version seen, so later real versions are still taken.
 * A transient failure of the newest announced model (the store unreadable for a while) is retried with a
 * growing backoff until it loads or a newer version is announced; following goes on meanwhile. No record's
 * failure stops the channel (each is handled here); the connector's own health checks report the consumer.
 */
@ApplicationScoped
public class EventFollower {

    private static final Logger LOG = Logger.getLogger(EventFollower.class);
    /** The channels, configured in application.properties. */
    static final String MODELS = "models-merged";
    static final String CHECKPOINTS = "adapter-checkpoints";

    @Inject
    ServingConfig settings;
    @Inject
    FollowerConfig.Topics topicsConfig;
    @Inject
    StoreConfig storeConfig;
    @Inject
    Serving serving;

    /** The highest model_version seen of each announced model: older and repeated events are skipped. */
    private final Map<String, Long> newestVersions = new HashMap<>();
    /** The highest checkpoint step seen of each job whose adapter is followed. */
    private final Map<String, Long> newestSteps = new HashMap<>();
    private final StartupHistory modelHistory = new StartupHistory();
    private final StartupHistory checkpointHistory = new StartupHistory();
    private ArtifactStore store;
    private final Backoff backoff = Backoff.standard();
    /** Per model, its newest announced version when it failed to load for a transient reason: tried again later. */
    private final Map<String, MergedModelEvent> retrying = new HashMap<>();
    private ScheduledExecutorService retries;
    private boolean followModels;
    private boolean followAdapters;
    private String modelsTopic;
    private String checkpointsTopic;

    /**
     * After {@link Serving} has started, so that a configured model is served first, and before Reactive
     * Messaging starts the channels (priority {@code LIBRARY_BEFORE}), so that no record comes before.
     */
    void start(@Observes @Priority(Serving.STARTUP_PRIORITY + 1) StartupEvent event) throws IOException {
        followModels = settings.followModels();
        followAdapters = settings.followAdapters();
        modelsTopic = topicsConfig.modelsMerged();
        checkpointsTopic = topicsConfig.checkpoints();
        if (!followModels && !followAdapters) {
            return;
        }
        store = storeConfig.open();
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
        retries = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("loraflow-model-retries").factory());
        LOG.infof("following %s%s (store %s)", followModels ? modelsTopic + " (model " + followedName() + ")" : "",
                followAdapters ? (followModels ? " and " : "") + checkpointsTopic + " (adapters on base "
                        + settings.adapterBaseModel().orElse("<none configured>") + ")" : "", store);
    }

    void stop(@Observes ShutdownEvent event) {
        if (retries != null) {
            retries.shutdownNow();
        }
    }

    /** The partitions of a followed topic were assigned: its history is what lies below their end offsets now. */
    void assigned(Consumer<?, ?> consumer, Collection<TopicPartition> partitions) {
        Map<String, List<TopicPartition>> byTopic = new HashMap<>();
        partitions.forEach(partition -> byTopic.computeIfAbsent(partition.topic(), t -> new ArrayList<>()).add(partition));
        byTopic.forEach((topic, assigned) -> {
            StartupHistory history = topic.equals(modelsTopic) ? modelHistory : checkpointHistory;
            if (history.assigned(consumer, assigned)) {
                handOver(history);
            }
        });
    }

    @Incoming(MODELS)
    @Blocking
    public void modelAnnounced(ConsumerRecord<byte[], byte[]> record) {
        follow(modelHistory, record);
    }

    @Incoming(CHECKPOINTS)
    @Blocking
    public void checkpointAnnounced(ConsumerRecord<byte[], byte[]> record) {
        follow(checkpointHistory, record);
    }

    private synchronized void follow(StartupHistory history, ConsumerRecord<byte[], byte[]> record) {
        if (history.add(record)) {
            handOver(history);
        } else {
            followLive(record);
        }
    }

    /** Once a topic's history is read whole: serves the newest of it, then the records that came meanwhile. */
    private synchronized void handOver(StartupHistory history) {
        StartupHistory.Handover handover = history.complete();
        if (handover == null) {
            return;
        }
        discover(handover.history(), history == modelHistory);
        handover.later().forEach(this::followLive);
    }

    private void followLive(ConsumerRecord<byte[], byte[]> record) {
        try {
            if (record.topic().equals(modelsTopic)) {
                followModel(record);
            } else {
                followAdapter(record);
            }
        } catch (RuntimeException e) {
            // One record's surprise must not stop the service from following the next.
            LOG.errorf(e, "record %s-%d@%d not followed: %s", record.topic(), record.partition(), record.offset(),
                    e.getMessage());
        }
    }

    private List<String> followedNames() {
        return settings.followModelNames().orElse(List.of()).stream().map(String::strip).filter(name -> !name.isEmpty()).toList();
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

    /** Serves the newest of what a topic's history announced (models or adapters). */
    private void discover(List<ConsumerRecord<byte[], byte[]>> history, boolean modelsTopicHistory) {
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
        LOG.infof("read %d records of %s's history", history.size(), modelsTopicHistory ? modelsTopic : checkpointsTopic);
        if (!models.isEmpty()) {
            serveNewest(models, timestamps);
        } else if (modelsTopicHistory) {
            LOG.infof("no model announced on %s yet for %s", modelsTopic, followedName());
        }
        newestCheckpoints.values().forEach(this::loadAdapter);
    }

    /**
     * The newest of each followed model announced: its highest model_version, ties to the latest record; the
     * models in the order they were last announced, so that the default name ends standing for the one announced
     * last. When a version cannot be loaded the next newest is tried, so that a bad announcement does not leave
     * the model unserved. (Under a memory budget the older ones may be closed again at once, to be loaded when
     * asked for.)
     */
    private void serveNewest(List<MergedModelEvent> models, Map<MergedModelEvent, Long> timestamps) {
        Map<String, Long> lastAnnounced = new HashMap<>();
        models.forEach(event -> lastAnnounced.merge(event.model(), timestamps.get(event), Math::max));
        List<String> names = lastAnnounced.keySet().stream().sorted(Comparator.comparing(lastAnnounced::get)).toList();
        for (String model : names) {
            List<MergedModelEvent> candidates = models.stream().filter(event -> event.model().equals(model)).distinct()
                    .sorted(Comparator.comparingLong(MergedModelEvent::modelVersion).thenComparing(timestamps::get)
                            .reversed())
                    .toList();
            if (candidates.stream().noneMatch(this::load)) {
                LOG.warnf("none of the %d announced versions of %s could be loaded", candidates.size(), model);
            }
        }
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
        retrying.remove(event.model());
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
            serving.load(event.model(), onnx, merged, event.onnxFileSha256(), Serving.Trigger.EVENT,
                    new Serving.Origin(event.model(), event.modelVersion()));
            backoff.succeeded();
            return true;
        } catch (ModelLoadException e) {
            LOG.warnf("%s not loaded, the current model keeps serving: %s", what, e.getMessage());
        } catch (IOException | IllegalArgumentException e) {
            serving.swaps(Serving.Trigger.EVENT, "failed").increment();
            if (Failures.isTransient(e)) {
                Duration wait = backoff.failed();
                retrying.merge(event.model(), event, (seen, next) -> next.modelVersion() > seen.modelVersion() ? next : seen);
                retries.schedule(() -> retry(event.model()), wait.toMillis(), TimeUnit.MILLISECONDS);
                LOG.warnf("%s not loaded, the current model keeps serving: %s; trying again in %d s", what,
                        e.getMessage(), wait.toSeconds());
                return false;
            }
            LOG.warnf("%s not loaded, the current model keeps serving: %s", what, e.getMessage());
        }
        return false;
    }

    /** Loads the model's newest announced version again, unless it loaded or a newer one came meanwhile. */
    private synchronized void retry(String model) {
        MergedModelEvent event = retrying.remove(model);
        if (event != null) {
            load(event);
        }
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
                    settings.adapterBaseModel().filter(name -> !name.isBlank()).orElse("(loraflow.serving.adapter-base-model is not set)"));
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
        return settings.adapterBaseModel().filter(name -> name.equals(checkpoint.baseModel())).isPresent()
                && settings.adapterBaseSha256().filter(sha -> !sha.isBlank()).map(sha -> sha.equals(checkpoint.baseModelSha256()))
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
}
