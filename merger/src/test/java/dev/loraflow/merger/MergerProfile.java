package dev.loraflow.merger;

import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import io.quarkus.test.junit.QuarkusTestProfile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** A models root with a tiny GPT-2, a fresh store, an API key, merges of final checkpoints, one crash. */
public class MergerProfile implements QuarkusTestProfile {

    static final String API_KEY = "merger-test-key-0123";
    static final String BASE = "tiny-gpt2";
    static final Gpt2Config CONFIG = new Gpt2Config(48, 32, 16, 2, 2, 32, 1e-5);
    static final String CRASHING_JOB = "j-crash";
    static final Path ROOT = createRoot();

    private static Path createRoot() {
        try {
            Path root = Files.createTempDirectory("loraflow-merger-test-");
            RandomModel.write(CONFIG, 1, root.resolve("models").resolve(BASE));
            return root;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of(
                "loraflow.models.root", ROOT.resolve("models").toString(),
                "loraflow.store.root", ROOT.resolve("store").toString(),
                "loraflow.merger.work-dir", ROOT.resolve("work").toString(),
                "loraflow.api-keys", API_KEY,
                "loraflow.merger.trigger", "final",
                "loraflow.merger.fault", "crash-after-export:" + CRASHING_JOB);
    }
}
