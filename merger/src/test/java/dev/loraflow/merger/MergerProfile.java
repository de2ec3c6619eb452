package dev.loraflow.merger;

import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import io.quarkus.test.junit.QuarkusTestProfile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.StringJoiner;
import dev.loraflow.core.random.Rng;

/** A models root with a tiny GPT-2, a fresh store, an API key, merges of final checkpoints, one crash. */
public class MergerProfile implements QuarkusTestProfile {

    static final String API_KEY = "merger-test-key-0123";
    static final String BASE = "tiny-gpt2";
    static final Gpt2Config CONFIG = new Gpt2Config(48, 32, 16, 2, 2, 32, 1e-5);
    static final String CRASHING_JOB = "j-crash";
    static final String HELD_OUT = "heldout.jsonl";
    static final Path ROOT = createRoot();

    private static Path createRoot() {
        try {
            Path root = Files.createTempDirectory("loraflow-merger-test-");
            RandomModel.write(CONFIG, 1, root.resolve("models").resolve(BASE));
            // Held-out examples for the quantized graphs' loss: random token sequences (the base knows no task).
            Rng rng = new Rng(14);
            StringBuilder heldOut = new StringBuilder();
            for (int line = 0; line < 8; line++) {
                StringJoiner ids = new StringJoiner(", ", "{\"input_ids\": [", "]}\n");
                for (int t = 0; t < 16; t++) {
                    ids.add(Long.toString(Math.floorMod(rng.nextLong(), CONFIG.vocabSize())));
                }
                heldOut.append(ids);
            }
            Files.writeString(root.resolve(HELD_OUT), heldOut);
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
                "loraflow.merger.fault", "crash-after-export:" + CRASHING_JOB,
                // int8 published whatever its loss (bound 100 %), int4 only if its loss does not rise at all.
                "loraflow.merger.quantize", "int8,int4",
                "loraflow.merger.quantize.verify-data", ROOT.resolve(HELD_OUT).toString(),
                "loraflow.merger.quantize.max-loss-increase.int8", "1",
                "loraflow.merger.quantize.max-loss-increase.int4", "0");
    }
}
