package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The base digest covers the bytes a load reads: through links, and shards wherever the index puts them. */
class ModelDigestTest {

    private static final String CONFIG = "{\"model_type\": \"gpt2\"}";

    @TempDir
    Path temp;

    private static SafetensorsWriter weights(float value) {
        return new SafetensorsWriter().add("a", new float[] {value, 2}, DType.F32, 2).add("b", new float[] {3}, DType.F32, 1);
    }

    @Test
    void aPlainDirectoryIsTheSha256sumManifestOfConfigAndWeights() throws IOException {
        Path model = Files.createDirectories(temp.resolve("plain"));
        Files.writeString(model.resolve("config.json"), CONFIG);
        weights(1).write(model.resolve("model.safetensors"));
        Files.writeString(model.resolve("tokenizer.json"), "{}");
        String manifest = Sha256.of(model.resolve("config.json")) + "  config.json\n"
                + Sha256.of(model.resolve("model.safetensors")) + "  model.safetensors\n";
        assertEquals(Sha256.of(manifest.getBytes(StandardCharsets.UTF_8)), ModelDigest.of(model));
        assertEquals(List.of("config.json", "model.safetensors"), ModelDigest.filesRead(model));
    }

    @Test
    void theBackgroundDigestIsTheSameAndAFailureIsItsError() throws IOException {
        Path model = Files.createDirectories(temp.resolve("background"));
        Files.writeString(model.resolve("config.json"), CONFIG);
        weights(1).write(model.resolve("model.safetensors"));
        assertEquals(ModelDigest.of(model), ModelDigest.inBackground(model).join());
        CompletionException missing = assertThrows(CompletionException.class,
                () -> ModelDigest.inBackground(temp.resolve("absent")).join());
        assertTrue(missing.getCause() instanceof IOException && missing.getCause().getMessage().contains("absent"),
                String.valueOf(missing.getCause()));
    }

    /** As the Hugging Face cache lays a snapshot out: every file a link to a blob named by its hash. */
    @Test
    void aSnapshotOfLinksDigestsTheBlobsItLinksTo() throws IOException {
        Path plain = Files.createDirectories(temp.resolve("plain"));
        Files.writeString(plain.resolve("config.json"), CONFIG);
        weights(1).write(plain.resolve("model.safetensors"));

        Path blobs = Files.createDirectories(temp.resolve("hub/blobs"));
        Path snapshot = Files.createDirectories(temp.resolve("hub/snapshots/0123abcd"));
        for (String file : List.of("config.json", "model.safetensors")) {
            Path blob = Files.copy(plain.resolve(file), blobs.resolve(Sha256.of(plain.resolve(file))));
            Files.createSymbolicLink(snapshot.resolve(file), snapshot.relativize(blob));
        }
        String digest = ModelDigest.of(snapshot);
        assertEquals(ModelDigest.of(plain), digest, "the same bytes, the same digest, links or not");

        weights(9).write(blobs.resolve(Sha256.of(plain.resolve("model.safetensors"))));
        assertNotEquals(digest, ModelDigest.of(snapshot), "a changed blob changes the digest");
    }

    @Test
    void shardsInASubdirectoryAreCoveredAndFilesNotReadAreNot() throws IOException {
        Path model = Files.createDirectories(temp.resolve("sharded"));
        Files.writeString(model.resolve("config.json"), CONFIG);
        Path shards = Files.createDirectories(model.resolve("weights"));
        new SafetensorsWriter().add("a", new float[] {1, 2}, DType.F32, 2).write(shards.resolve("part-1.safetensors"));
        new SafetensorsWriter().add("b", new float[] {3}, DType.F32, 1).write(shards.resolve("part-2.safetensors"));
        Files.writeString(model.resolve(SafetensorsWriter.INDEX_FILE),
                "{\"metadata\": {}, \"weight_map\": {\"a\": \"weights/part-1.safetensors\", \"b\": \"weights/part-2.safetensors\"}}");
        Files.writeString(model.resolve("unrelated.safetensors"), "not read by any load");
        assertEquals(List.of("config.json", SafetensorsWriter.INDEX_FILE, "weights/part-1.safetensors",
                "weights/part-2.safetensors"), ModelDigest.filesRead(model));

        String digest = ModelDigest.of(model);
        new SafetensorsWriter().add("b", new float[] {4}, DType.F32, 1).write(shards.resolve("part-2.safetensors"));
        assertNotEquals(digest, ModelDigest.of(model), "the shard in the subdirectory is covered");
    }
}
