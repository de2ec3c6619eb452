package dev.loraflow.inference;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The model served under each name. A swap publishes the new model atomically and retires the old one,
 * which closes when the requests still running on it end; requests that start after the swap get the
 * new one, so each request runs wholly on one version.
 */
public final class ModelRegistry implements AutoCloseable {

    private final Map<String, ServedModel> models = new ConcurrentHashMap<>();

    /**
     * The model served as {@code name} with a lease taken on it (release it, or hand it to
     * {@link Engine#submit}); null when none is.
     */
    public ServedModel acquire(String name) {
        while (true) {
            ServedModel model = models.get(name);
            if (model == null) {
                return null;
            }
            if (model.tryAcquire()) {
                return model;
            }
            // Closed by a swap between the lookup and the lease: the map already holds its successor.
        }
    }

    /** The model now served as {@code name}, without a lease: for metadata only. */
    public ServedModel current(String name) {
        return models.get(name);
    }

    /** Serves {@code model} under its name; the model it replaces finishes its requests and closes. */
    public void serve(ServedModel model) {
        Objects.requireNonNull(model, "model");
        ServedModel previous = models.put(model.name(), model);
        if (previous != null && previous != model) {
            previous.retire();
        }
    }

    /** @return whether a model of that name was served */
    public boolean remove(String name) {
        ServedModel previous = models.remove(name);
        if (previous != null) {
            previous.retire();
        }
        return previous != null;
    }

    public List<ServedModel> models() {
        return models.values().stream().sorted((a, b) -> a.name().compareTo(b.name())).toList();
    }

    public boolean isEmpty() {
        return models.isEmpty();
    }

    @Override
    public void close() {
        models.keySet().forEach(this::remove);
    }
}
