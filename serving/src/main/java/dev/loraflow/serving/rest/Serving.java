package dev.loraflow.serving.rest;

import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.inference.Engine;
import dev.loraflow.inference.EngineSettings;
import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.inference.ModelRegistry;
import dev.loraflow.inference.ServedModel;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * The engine and the models it serves: the configured model loaded at start, swaps and adapters loaded
 * through the admin API or from Kafka events ({@code dev.loraflow.serving.messaging}). One base model is
 * served, under {@code loraflow.serving.model.name}; its adapters are served under their own names.
 */
@ApplicationScoped
public class Serving {

    /** What asked for a model: the configured path at start, the admin API, or a merged-model event. */
    public enum Trigger {
        CONFIG,
        ADMIN,
        EVENT;

        String tag() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The announced model a load came from: the event's model name (the job id) and model_version (its step). */
    public record Origin(String model, long modelVersion) {}

    private static final Logger LOG = Logger.getLogger(Serving.class);

    @ConfigProperty(name = "loraflow.serving.model.name", defaultValue = "loraflow")
    String modelName;
    @ConfigProperty(name = "loraflow.serving.model.path")
    Optional<String> modelPath;
    @ConfigProperty(name = "loraflow.serving.model.sha256")
    Optional<String> modelSha256;
    @ConfigProperty(name = "loraflow.serving.model.config-dir")
    Optional<String> modelConfigDirectory;
    @ConfigProperty(name = "loraflow.serving.provider", defaultValue = "cpu")
    String provider;
    @ConfigProperty(name = "loraflow.serving.cuda-device", defaultValue = "0")
    int cudaDevice;
    @ConfigProperty(name = "loraflow.serving.optimization-level", defaultValue = "all")
    String optimizationLevel;
    @ConfigProperty(name = "loraflow.serving.intra-op-threads", defaultValue = "0")
    int intraOpThreads;
    @ConfigProperty(name = "loraflow.serving.inter-op-threads", defaultValue = "0")
    int interOpThreads;
    @ConfigProperty(name = "loraflow.serving.memory-arena", defaultValue = "true")
    boolean memoryArena;
    @ConfigProperty(name = "loraflow.serving.max-batch-size", defaultValue = "16")
    int maxBatchSize;
    @ConfigProperty(name = "loraflow.serving.queue-capacity", defaultValue = "64")
    int queueCapacity;
    @ConfigProperty(name = "loraflow.serving.kv-cache-bytes", defaultValue = "" + EngineSettings.DEFAULT_KV_CACHE_BYTES)
    long kvCacheBytes;
    @ConfigProperty(name = "loraflow.serving.prefill-chunk-tokens", defaultValue = "" + EngineSettings.DEFAULT_PREFILL_CHUNK_TOKENS)
    int prefillChunkTokens;
    @ConfigProperty(name = "loraflow.serving.max-adapters", defaultValue = "" + EngineSettings.DEFAULT_MAX_ADAPTERS)
    int maxAdapters;
    @ConfigProperty(name = "loraflow.serving.max-adapter-bytes", defaultValue = "" + EngineSettings.DEFAULT_MAX_ADAPTER_BYTES)
    long maxAdapterBytes;

    @Inject
    MeterRegistry meters;

    private final ModelRegistry registry = new ModelRegistry();
    private final AtomicLong versions = new AtomicLong();
    private final AtomicLong servedVersion = new AtomicLong();
    /** By served version: the announced model each came from, for models loaded from events. */
    private final Map<String, Origin> origins = new ConcurrentHashMap<>();
    private EngineSettings settings;
    private Engine engine;

    void start(@Observes StartupEvent event) throws ModelLoadException {
        settings = new EngineSettings(EngineSettings.Provider.parse(provider), cudaDevice,
                EngineSettings.OptimizationLevel.parse(optimizationLevel), intraOpThreads, interOpThreads, memoryArena,
                maxBatchSize, queueCapacity).withKvCache(kvCacheBytes, prefillChunkTokens)
                .withAdapterLimits(maxAdapters, maxAdapterBytes);
        engine = new Engine(settings);
        Gauge.builder("loraflow.queue.depth", engine, Engine::queueDepth).description("requests waiting to join the batch")
                .register(meters);
        Gauge.builder("loraflow.batch.active", engine, Engine::activeSequences).description("sequences in the batch")
                .register(meters);
        Gauge.builder("loraflow.model.version", servedVersion, AtomicLong::get)
                .description("the version of the model served (counts loads since start)").tag("model", modelName)
                .register(meters);
        Gauge.builder("loraflow.serving.model.version", this, Serving::servedModelVersion)
                .description("model_version (the checkpoint's step) of the announced model served; NaN when it was"
                        + " not loaded from a loraflow.models.merged event").tag("model", modelName)
                .register(meters);
        DistributionSummary batchSizes = DistributionSummary.builder("loraflow.decode.batch.size")
                .description("sequences per decode run (one run per model and step, adapters together)").register(meters);
        engine.onStep(batchSizes::record);
        if (modelPath.isPresent() && !modelPath.get().isBlank()) {
            Path onnx = Path.of(modelPath.get());
            Path companions = modelConfigDirectory.filter(dir -> !dir.isBlank()).map(Path::of)
                    .orElse(onnx.toAbsolutePath().getParent());
            load(onnx, companions, modelSha256.filter(sha -> !sha.isBlank()).orElse(null), Trigger.CONFIG, null);
        } else {
            LOG.info("no model configured (loraflow.serving.model.path): not ready until one is loaded via POST /admin/models");
        }
    }

    void stop(@Observes ShutdownEvent event) {
        engine.close();
        registry.close();
    }

    /**
     * Loads, verifies and warms up a model, then serves it in place of the current one, whose requests
     * finish on it; on failure the current one keeps serving. Adapters loaded on the old model are not
     * carried over. Counted in {@code loraflow_serving_model_swaps_total{outcome=loaded|failed}}.
     *
     * @param companions the directory holding config.json and the tokenizer files
     * @param origin     the announced model it came from, or null
     */
    public synchronized ServedModel load(Path onnx, Path companions, String sha256, Trigger trigger, Origin origin)
            throws ModelLoadException {
        String version = Long.toString(versions.incrementAndGet());
        ServedModel model;
        try {
            model = ServedModel.load(modelName, version, onnx, sha256, companions, settings);
        } catch (ModelLoadException e) {
            swaps(trigger, "failed").increment();
            throw e;
        }
        ServedModel previous = registry.current(modelName);
        if (origin != null) {
            origins.put(version, origin);
        }
        registry.serve(model);
        servedVersion.set(Long.parseLong(version));
        if (previous != null) {
            origins.remove(previous.version());
        }
        swaps(trigger, "loaded").increment();
        LOG.infof("serving %s version %s from %s (SHA-256 %s) on %s%s", modelName, version, onnx, model.sha256(),
                model.provider(), origin == null ? "" : ", announced as " + origin.model() + " version " + origin.modelVersion());
        return model;
    }

    /**
     * Counts what became of a swap asked for: loaded or failed; for events also skipped (not newer than
     * the version seen, or another model) and malformed (an unreadable record).
     */
    public Counter swaps(Trigger trigger, String outcome) {
        return Counter.builder("loraflow.serving.model.swaps").description("model swaps asked for, by what became of them")
                .tag("trigger", trigger.tag()).tag("outcome", outcome).register(meters);
    }

    /** The announced model that {@code model} was loaded from; null if it was not loaded from an event. */
    public Origin origin(ServedModel model) {
        return model == null ? null : origins.get(model.version());
    }

    private double servedModelVersion() {
        Origin origin = origin(current());
        return origin == null ? Double.NaN : origin.modelVersion();
    }

    /** Loads a PEFT adapter directory under {@code name} into the served (un-merged) model. */
    public synchronized void loadAdapter(String name, Path directory) throws ModelLoadException {
        ServedModel model = registry.current(modelName);
        if (model == null) {
            throw new ModelLoadException("no model is loaded to add adapter " + name + " to");
        }
        if (name.equals(modelName)) {
            throw new ModelLoadException("an adapter cannot take the base model's name " + modelName);
        }
        try {
            model.loadAdapter(name, PeftAdapter.read(directory));
        } catch (IOException | RuntimeException e) {
            throw new ModelLoadException(directory + ": " + e.getMessage(), e);
        }
    }

    public synchronized boolean unloadAdapter(String name) {
        ServedModel model = registry.current(modelName);
        return model != null && model.unloadAdapter(name);
    }

    /** What a request's {@code model} names: the base model, or one of its adapters. */
    public record Target(ServedModel model, String adapter) {
        public String servedName() {
            return adapter == null ? model.name() : adapter;
        }
    }

    /** The target named, with a lease taken on its model (the engine releases it); null if none is served. */
    public Target acquire(String name) {
        ServedModel model = registry.acquire(modelName);
        if (model == null) {
            return null;
        }
        if (name.equals(modelName)) {
            return new Target(model, null);
        }
        if (model.hasAdapter(name)) {
            return new Target(model, name);
        }
        model.release();
        return null;
    }

    /** The served model, without a lease: for metadata. */
    public ServedModel current() {
        return registry.current(modelName);
    }

    /** A verified model is served and the engine thread that runs it is alive. */
    public boolean ready() {
        ServedModel model = current();
        return model != null && !model.isClosed() && live();
    }

    /** The engine thread runs (see {@link Engine#alive()}); when it died every request fails until a restart. */
    public boolean live() {
        return engine != null && engine.alive();
    }

    public String modelName() {
        return modelName;
    }

    public Engine engine() {
        return engine;
    }

    public MeterRegistry meters() {
        return meters;
    }
}
