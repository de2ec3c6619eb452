package dev.loraflow.serving.rest;

import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.inference.TinyModels;
import dev.loraflow.serving.TemporaryDirectoryResource;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/** Exports two tiny GPT-2 models, A (served at start) and B (for swaps), into a temporary directory. */
public class TinyModelResource extends TemporaryDirectoryResource {

    static final long SEED_A = 31;
    static final long SEED_B = 32;

    static CausalLanguageModel javaModel(long seed) {
        return TinyModels.model(TinyModels.GPT2, seed);
    }

    @Override
    protected Map<String, String> start(Path dir) throws IOException {
        Path a = TinyModels.export(javaModel(SEED_A), TinyModels.weights(TinyModels.GPT2, SEED_A), dir.resolve("a"));
        Path b = TinyModels.export(javaModel(SEED_B), TinyModels.weights(TinyModels.GPT2, SEED_B), dir.resolve("b"));
        return Map.of("loraflow.serving.model.path", a.toString(), "loraflow.test.model-a", a.toString(),
                "loraflow.test.model-b", b.toString(), "loraflow.serving.admin-roots", dir.toString());
    }
}
