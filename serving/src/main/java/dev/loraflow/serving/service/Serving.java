package dev.loraflow.serving.service;

import dev.loraflow.inference.Engine;
import dev.loraflow.inference.EngineSettings;
import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.inference.ServedModel;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.Priority;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import jakarta.interceptor.Interceptor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * The engine and the models it serves, by name: the default model ({@code loraflow.serving.model.name}, loaded
 * at start from {@code loraflow.serving.model.path} or through the admin API), each followed model announced on
 * {@code loraflow.models.merged} under its own name (the event's {@code model}: the training job's id), and the
 * adapters loaded on them, under their own names. Open models share one engine (one decode run per model and
 * step) and a memory budget ({@link ModelCatalog}).
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

    /** A model known by name, open or not (evicted models are loaded again when asked for). */
    public record Listing(String name, String version, long loadedAtEpochSeconds, boolean open, Origin origin,
                          List<String> adapters) {}

    /**
     * Serving starts before Reactive Messaging starts its channels ({@code LIBRARY_BEFORE}), so that the engine
     * and a configured model are there before the first announced model arrives.
     */
    public static final int STARTUP_PRIORITY = Interceptor.Priority.LIBRARY_BEFORE - 100;

    private static final Logger LOG = Logger.getLogger(Serving.class);

    @Inject
    ServingConfig config;
    @Inject
    MeterRegistry meters;

    private final AtomicLong versions = new AtomicLong();
    private final AtomicLong servedVersion = new AtomicLong();
    private EngineSettings settings;
    private Engine engine;
    private ModelCatalog catalog;

    void start(@Observes @Priority(STARTUP_PRIORITY) StartupEvent event) throws ModelLoadException {
        settings = new EngineSettings(EngineSettings.Provider.parse(config.provider()), config.cudaDevice(),
                EngineSettings.OptimizationLevel.parse(config.optimizationLevel()), config.intraOpThreads(),
                config.interOpThreads(), config.memoryArena(), config.maxBatchSize(), config.queueCapacity())
                .withKvCache(config.kvCacheBytes(), config.prefillChunkTokens())
                .withAdapterLimits(config.maxAdapters(), config.maxAdapterBytes())
                .withIntraOpSpinning(config.intraOpSpinning());
        engine = new Engine(settings);
        catalog = new ModelCatalog(modelName(), config.models().memoryBudget().asLongValue(),
                (name, version, source) -> ServedModel.load(name, version, source.onnx(), source.sha256(),
                        source.companions(), settings),
                new ModelCatalog.Listener() {
                    @Override
                    public void evicted(String name) {
                        meters.counter("loraflow.serving.model.evictions").increment();
                    }

                    @Override
                    public void reloaded(String name) {
                        meters.counter("loraflow.serving.model.reloads").increment();
                    }
                });
        Gauge.builder("loraflow.queue.depth", engine, Engine::queueDepth).description("requests waiting to join the batch")
                .register(meters);
        Gauge.builder("loraflow.batch.active", engine, Engine::activeSequences).description("sequences in the batch")
                .register(meters);
        Gauge.builder("loraflow.model.version", servedVersion, AtomicLong::get)
                .description("the version of the model served (counts loads since start)").tag("model", modelName())
                .register(meters);
        Gauge.builder("loraflow.serving.model.version", this, Serving::servedModelVersion)
                .description("model_version (the checkpoint's step) of the announced model served under the default"
                        + " name; NaN when it was not loaded from a loraflow.models.merged event").tag("model", modelName())
                .register(meters);
        Gauge.builder("loraflow.serving.models.open", this, serving -> serving.catalog.openModels())
                .description("models open now (the others known are loaded again when asked for)").register(meters);
        Gauge.builder("loraflow.serving.models.bytes", this, serving -> serving.catalog.openBytes())
                .description("bytes of the open models' weights, as loraflow.serving.models.memory-budget counts them")
                .register(meters);
        meters.counter("loraflow.serving.model.evictions");
        meters.counter("loraflow.serving.model.reloads");
        DistributionSummary batchSizes = DistributionSummary.builder("loraflow.decode.batch.size")
                .description("sequences per decode run (one run per model and step, adapters together)").register(meters);
        engine.onStep(batchSizes::record);
        String path = config.model().path().filter(value -> !value.isBlank()).orElse(null);
        if (path != null) {
            Path onnx = Path.of(path);
            Path companions = config.model().configDir().filter(dir -> !dir.isBlank()).map(Path::of)
                    .orElse(onnx.toAbsolutePath().getParent());
            load(modelName(), onnx, companions, config.model().sha256().filter(sha -> !sha.isBlank()).orElse(null),
                    Trigger.CONFIG, null);
        } else {
            LOG.info("no model configured (loraflow.serving.model.path): not ready until one is loaded via POST /admin/models"
                    + " or announced on loraflow.models.merged");
        }
    }

    void stop(@Observes ShutdownEvent event) {
        engine.close();
        catalog.close();
    }

    /**
     * Loads, verifies and warms up a model, then serves it as {@code name} in place of that name's current
     * model, whose requests finish on it; on failure the current one keeps serving. Adapters loaded on the old
     * model are not carried over. A model announced by an event ({@code origin} given) is also what the default
     * name stands for from then on. Counted in {@code loraflow_serving_model_swaps_total{outcome=loaded|failed}}.
     *
     * @param companions the directory holding config.json and the tokenizer files
     * @param origin     the announced model it came from, or null
     */
    public ServedModel load(String name, Path onnx, Path companions, String sha256, Trigger trigger, Origin origin)
            throws ModelLoadException {
        String version = Long.toString(versions.incrementAndGet());
        ServedModel model;
        try {
            model = catalog.load(name, version, new ModelCatalog.Source(onnx, companions, sha256, origin), origin != null);
        } catch (ModelLoadException e) {
            swaps(trigger, "failed").increment();
            throw e;
        }
        if (catalog.resolve(modelName()).equals(name)) {
            servedVersion.set(Long.parseLong(version));
        }
        swaps(trigger, "loaded").increment();
        LOG.infof("serving %s version %s from %s (SHA-256 %s) on %s%s", name, version, onnx, model.sha256(),
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

    private double servedModelVersion() {
        ModelCatalog.Entry entry = catalog.entry(modelName());
        return entry == null || entry.origin() == null ? Double.NaN : entry.origin().modelVersion();
    }

    /** Loads a PEFT adapter directory under {@code name} into the default (un-merged) model. */
    public void loadAdapter(String name, Path directory) throws ModelLoadException {
        ModelCatalog.Entry entry = catalog.entry(modelName());
        if (entry == null) {
            throw new ModelLoadException("no model is loaded to add adapter " + name + " to");
        }
        if (name.equals(modelName()) || catalog.entry(name) != null) {
            throw new ModelLoadException("an adapter cannot take a model's name " + name);
        }
        ModelCatalog.Entry holder = catalog.holderOf(name);
        if (holder != null && holder != entry) {
            throw new ModelLoadException("adapter " + name + " is loaded on model " + holder.name() + " already");
        }
        catalog.loadAdapter(entry, name, directory);
    }

    public boolean unloadAdapter(String name) {
        return catalog.unloadAdapter(name);
    }

    /** What a request's {@code model} names: a model, or an adapter on one; {@code servedName} as the request named it. */
    public record Target(ServedModel model, String adapter, String servedName) {}

    /**
     * The model or adapter named, with a lease taken on its model (the engine releases it), loaded again first
     * when it was evicted; null if no such name is served.
     *
     * @throws ApiError 503 when an evicted model cannot be loaded again (its files went away, say)
     */
    public Target acquire(String name) {
        while (true) {
            ModelCatalog.Entry entry = catalog.entry(name);
            String adapter = null;
            if (entry == null) {
                entry = catalog.holderOf(name);
                adapter = name;
            }
            if (entry == null) {
                return null;
            }
            ServedModel model;
            try {
                model = catalog.acquire(entry);
            } catch (ModelLoadException e) {
                throw new ApiError(503, "the model '" + entry.name() + "' could not be loaded again: " + e.getMessage(),
                        "model", "model_not_loaded");
            }
            if (model == null) {
                continue; // swapped or removed meanwhile: look the name up again
            }
            if (adapter != null && !model.hasAdapter(adapter)) {
                model.release();
                return null;
            }
            return new Target(model, adapter, name);
        }
    }

    /** The model the default name serves, without a lease: for metadata; null when none is open. */
    public ServedModel current() {
        ModelCatalog.Entry entry = catalog.entry(modelName());
        return entry == null ? null : entry.model;
    }

    /** The announced model that {@code name} was loaded from; null if it was not loaded from an event. */
    public Origin origin(String name) {
        ModelCatalog.Entry entry = catalog.entry(name);
        return entry == null ? null : entry.origin();
    }

    /**
     * Every model known by name, open or not: first the default name (when it serves a model: its own, or the
     * newest announced one, which is then listed under its own name too), then the others by name.
     */
    public List<Listing> models() {
        List<Listing> listings = new ArrayList<>();
        boolean aliased = aliasOf(modelName()) != null;
        for (ModelCatalog.Entry entry : catalog.entries()) {
            if (aliased && listings.isEmpty()) {
                listings.add(listing(modelName(), entry));
            }
            listings.add(listing(entry.name(), entry));
        }
        return listings;
    }

    private static Listing listing(String name, ModelCatalog.Entry entry) {
        return new Listing(name, entry.version, entry.loadedAtEpochSeconds, entry.open(), entry.origin(),
                entry.adapters.keySet().stream().sorted().toList());
    }

    /** Whether {@code name} is the default name standing for another model (the newest announced), and which. */
    private String aliasOf(String name) {
        String resolved = catalog.resolve(name);
        return resolved.equals(name) ? null : resolved;
    }

    /** A verified model is served (open, or loaded again when asked for) and the engine thread is alive. */
    public boolean ready() {
        return !catalog.entries().isEmpty() && live();
    }

    /** The engine thread runs (see {@link Engine#alive()}); when it died every request fails until a restart. */
    public boolean live() {
        return engine != null && engine.alive();
    }

    public String modelName() {
        return config.model().name();
    }

    public Engine engine() {
        return engine;
    }

    public MeterRegistry meters() {
        return meters;
    }
}
