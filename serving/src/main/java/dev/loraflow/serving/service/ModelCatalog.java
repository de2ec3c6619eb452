package dev.loraflow.serving.service;

import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.inference.ServedModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * The models served by name, each known by where it comes from (its graph, companions, digest and origin)
 * whether or not it is open now. Open models take memory from a budget: when loading one exceeds it, the
 * least recently used others are closed (retired: their requests in flight finish first) and are loaded
 * again, from the same files, when next asked for. Loading a new version under a name swaps it atomically,
 * as {@link dev.loraflow.inference.ModelRegistry} does for one name.
 *
 * <p>The default name ({@code loraflow.serving.model.name}) is a model of its own when it was loaded under
 * that name (configured at start, or {@code POST /admin/models}); when a followed model is loaded from an
 * event, the default name stands for that model instead (the newest announced), so clients that name no job
 * keep working.
 *
 * <p>Loads, swaps and evictions are serialized (one model is read at a time); requests for open models take
 * their lease without waiting for them.
 */
final class ModelCatalog implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(ModelCatalog.class);

    /** Where a model comes from: enough to open it again after an eviction. */
    record Source(Path onnx, Path companions, String sha256, Serving.Origin origin) {}

    /** Opens a model's session from its source (file SHA-256, warm-up): {@link ServedModel#load}. */
    @FunctionalInterface
    interface Opener {
        ServedModel open(String name, String version, Source source) throws ModelLoadException;
    }

    /** Told of evictions and reloads, for the metrics. */
    interface Listener {
        void evicted(String name);

        void reloaded(String name);
    }

    /** One name: its source and version, its session while open, and the adapters loaded on it. */
    static final class Entry {
        final String name;
        final Source source;
        final String version;
        final long bytes;
        /** Adapter name → its PEFT directory: loaded again when the model is. */
        final Map<String, Path> adapters = new ConcurrentHashMap<>();
        volatile ServedModel model;
        volatile long lastUsedNanos = System.nanoTime();
        volatile long loadedAtEpochSeconds;

        Entry(String name, Source source, String version, long bytes) {
            this.name = name;
            this.source = source;
            this.version = version;
            this.bytes = bytes;
        }

        String name() {
            return name;
        }

        Serving.Origin origin() {
            return source.origin();
        }

        boolean open() {
            ServedModel current = model;
            return current != null && !current.isClosed();
        }
    }

    private final String defaultName;
    private final long budgetBytes;
    private final Opener opener;
    private final Listener listener;
    private final Map<String, Entry> entries = new ConcurrentHashMap<>();
    /** The model the default name stands for when it was loaded from an event; null otherwise. */
    private volatile String defaultAlias;

    ModelCatalog(String defaultName, long budgetBytes, Opener opener, Listener listener) {
        this.defaultName = defaultName;
        this.budgetBytes = budgetBytes;
        this.opener = opener;
        this.listener = listener;
    }

    /** The name of the entry that {@code name} addresses: itself, or for the default name the model it stands for. */
    String resolve(String name) {
        String alias = defaultAlias;
        return name.equals(defaultName) && alias != null ? alias : name;
    }

    Entry entry(String name) {
        return entries.get(resolve(name));
    }

    /** The model's entry that holds adapter {@code adapter}, or null. */
    Entry holderOf(String adapter) {
        for (Entry entry : entries.values()) {
            if (entry.adapters.containsKey(adapter)) {
                return entry;
            }
        }
        return null;
    }

    /**
     * Opens {@code source} as {@code name} and serves it in place of that name's current model, whose requests
     * finish on it; then closes the least recently used others while the budget is exceeded. On failure nothing
     * changes. With {@code asDefault}, the default name stands for this model from now on.
     */
    synchronized ServedModel load(String name, String version, Source source, boolean asDefault)
            throws ModelLoadException {
        Entry entry = new Entry(name, source, version, footprint(source.onnx()));
        ServedModel model = opener.open(name, version, source);
        entry.model = model;
        entry.loadedAtEpochSeconds = model.loadedAtEpochSeconds();
        Entry previous = entries.put(name, entry);
        if (previous != null) {
            retire(previous);
        }
        if (asDefault && !name.equals(defaultName)) {
            defaultAlias = name;
            // The announced model replaces a model configured or loaded under the default name, as one swap.
            Entry replaced = entries.remove(defaultName);
            if (replaced != null) {
                retire(replaced);
            }
        } else if (name.equals(defaultName)) {
            defaultAlias = null;
        }
        evictBeyondBudget(entry);
        return model;
    }

    /**
     * The entry's model with a lease taken, opened again first when it was evicted; null when it has been
     * replaced or removed meanwhile (look the name up again).
     */
    ServedModel acquire(Entry entry) throws ModelLoadException {
        entry.lastUsedNanos = System.nanoTime();
        ServedModel model = entry.model;
        if (model != null && model.tryAcquire()) {
            return model;
        }
        synchronized (this) {
            if (entries.get(entry.name) != entry) {
                return null;
            }
            model = entry.model;
            if (model == null || model.isClosed()) {
                model = reopen(entry);
            }
            if (!model.tryAcquire()) {
                throw new IllegalStateException(entry.name + " closed while it was being acquired");
            }
            return model;
        }
    }

    /** Loads a PEFT adapter onto the entry's model (opening it when evicted) and remembers it for reloads. */
    synchronized void loadAdapter(Entry entry, String adapter, Path directory) throws ModelLoadException {
        ServedModel model = entry.model;
        if (model == null || model.isClosed()) {
            model = reopen(entry);
        }
        try {
            model.loadAdapter(adapter, PeftAdapter.read(directory));
        } catch (IOException | RuntimeException e) {
            throw new ModelLoadException(directory + ": " + e.getMessage(), e);
        }
        entry.adapters.put(adapter, directory);
    }

    synchronized boolean unloadAdapter(String adapter) {
        Entry entry = holderOf(adapter);
        if (entry == null) {
            return false;
        }
        entry.adapters.remove(adapter);
        ServedModel model = entry.model;
        if (model != null) {
            model.unloadAdapter(adapter);
        }
        return true;
    }

    /** Every entry, the one the default name stands for first, then by name. */
    List<Entry> entries() {
        String first = resolve(defaultName);
        List<Entry> all = new ArrayList<>(entries.values());
        all.sort(Comparator.comparing((Entry entry) -> !entry.name.equals(first)).thenComparing(Entry::name));
        return all;
    }

    /** The bytes the open models take, by the budget's measure. */
    long openBytes() {
        return entries.values().stream().filter(Entry::open).mapToLong(entry -> entry.bytes).sum();
    }

    long openModels() {
        return entries.values().stream().filter(Entry::open).count();
    }

    private ServedModel reopen(Entry entry) throws ModelLoadException {
        ServedModel model = opener.open(entry.name, entry.version, entry.source);
        for (Map.Entry<String, Path> adapter : new LinkedHashMap<>(entry.adapters).entrySet()) {
            try {
                model.loadAdapter(adapter.getKey(), PeftAdapter.read(adapter.getValue()));
            } catch (IOException | RuntimeException | ModelLoadException e) {
                entry.adapters.remove(adapter.getKey());
                LOG.warnf("adapter %s not loaded again onto %s: %s", adapter.getKey(), entry.name, e.getMessage());
            }
        }
        entry.model = model;
        entry.loadedAtEpochSeconds = model.loadedAtEpochSeconds();
        listener.reloaded(entry.name);
        LOG.infof("%s version %s loaded again on demand (%d MB)", entry.name, entry.version, entry.bytes >> 20);
        evictBeyondBudget(entry);
        return model;
    }

    /** Closes the least recently used open models, never {@code keep}, until the open ones fit the budget. */
    private void evictBeyondBudget(Entry keep) {
        if (budgetBytes <= 0) {
            return;
        }
        while (openBytes() > budgetBytes) {
            Entry oldest = entries.values().stream().filter(entry -> entry != keep && entry.open())
                    .min(Comparator.comparingLong(entry -> entry.lastUsedNanos)).orElse(null);
            if (oldest == null) {
                LOG.warnf("%s alone (%d MB) exceeds loraflow.serving.models.memory-budget (%d MB); served anyway",
                        keep.name, keep.bytes >> 20, budgetBytes >> 20);
                return;
            }
            ServedModel model = oldest.model;
            oldest.model = null;
            if (model != null) {
                model.retire();
            }
            listener.evicted(oldest.name);
            LOG.infof("%s version %s closed to stay within loraflow.serving.models.memory-budget (%d MB); it is"
                    + " loaded again when asked for", oldest.name, oldest.version, budgetBytes >> 20);
        }
    }

    private static void retire(Entry entry) {
        ServedModel model = entry.model;
        entry.model = null;
        if (model != null) {
            model.retire();
        }
    }

    /** The budget's measure of a model: its graph file and the external data beside it (FILE.onnx_data). */
    static long footprint(Path onnx) {
        Objects.requireNonNull(onnx, "onnx");
        long bytes = 0;
        for (Path file : List.of(onnx, onnx.resolveSibling(onnx.getFileName() + "_data"))) {
            try {
                if (Files.isRegularFile(file)) {
                    bytes += Files.size(file);
                }
            } catch (IOException e) {
                // Unreadable now: the load that follows says why.
            }
        }
        return bytes;
    }

    @Override
    public synchronized void close() {
        entries.values().forEach(ModelCatalog::retire);
        entries.clear();
    }
}
