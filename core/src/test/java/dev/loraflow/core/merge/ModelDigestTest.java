package dev.loraflow.core.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.safetensors.DType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelDigestTest {

    @TempDir
    Path temp;

    @Test
    void theDigestIsThatOfTheSha256sumManifestOfConfigAndWeights() throws IOException {
        Path model = MergeFixtures.writeBase(temp.resolve("m"), MergeFixtures.GPT2, MergeFixtures.weights(MergeFixtures.GPT2, 1),
                DType.F32, true);
        String manifest = Sha256.of(model.resolve("config.json")) + "  config.json\n"
                + Sha256.of(model.resolve("model.safetensors")) + "  model.safetensors\n";
        String digest = ModelDigest.of(model);
        assertEquals(Sha256.of(manifest.getBytes(StandardCharsets.UTF_8)), digest);

        Files.writeString(model.resolve("tokenizer.json"), "{\"changed\": true}");
        assertEquals(digest, ModelDigest.of(model), "tokenizer files do not change the weights");
        Files.writeString(model.resolve("config.json"), Files.readString(model.resolve("config.json")) + " ");
        assertNotEquals(digest, ModelDigest.of(model));
    }
}
