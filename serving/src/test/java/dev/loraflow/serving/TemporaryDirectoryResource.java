package dev.loraflow.serving;

import dev.loraflow.core.io.FileTrees;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A test resource that writes what the service starts from (models, adapters, a store) into a fresh
 * temporary directory of its own, and deletes that directory when the service stops.
 */
public abstract class TemporaryDirectoryResource implements QuarkusTestResourceLifecycleManager {

    private Path directory;

    /** Fills {@code directory} and returns the service's configuration. */
    protected abstract Map<String, String> start(Path directory) throws IOException;

    @Override
    public final Map<String, String> start() {
        try {
            directory = Files.createTempDirectory("loraflow-serving-" + getClass().getSimpleName() + "-");
            return start(directory);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void stop() {
        if (directory == null) {
            return;
        }
        try {
            FileTrees.delete(directory);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
