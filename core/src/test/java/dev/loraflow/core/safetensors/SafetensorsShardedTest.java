package dev.loraflow.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsShardedTest {

    private static final String SHARD_1 = "model-00001-of-00002.safetensors";
    private static final String SHARD_2 = "model-00002-of-00002.safetensors";

    @TempDir
    Path dir;

    private void writeTwoShards() throws IOException {
        new SafetensorsWriter().putMetadata("format", "pt")
                .add("wte", new float[] {1, 2, 3, 4}, DType.F32, 2, 2)
                .add("h.0.attn.c_attn.weight", new float[] {5, 6}, DType.BF16, 1, 2)
                .write(dir.resolve(SHARD_1));
        new SafetensorsWriter().putMetadata("format", "pt")
                .add("ln_f.weight", new float[] {7, 8}, DType.F16, 2)
                .write(dir.resolve(SHARD_2));
    }

    private void writeIndex(String weightMap) throws IOException {
        Files.writeString(dir.resolve(SafetensorsWriter.INDEX_FILE),
                "{\"metadata\": {\"total_size\": 28}, \"weight_map\": {" + weightMap + "}}");
    }

    private SafetensorsException rejected() {
        return assertThrows(SafetensorsException.class, () -> ShardedSafetensors.open(dir).close());
    }

    @Test
    void indexWithTwoShardsLoads() throws IOException {
        writeTwoShards();
        writeIndex("\"wte\": \"" + SHARD_1 + "\", \"h.0.attn.c_attn.weight\": \"" + SHARD_1 + "\", \"ln_f.weight\": \"" + SHARD_2 + "\"");
        try (var checkpoint = ShardedSafetensors.open(dir)) {
            assertEquals(List.of("wte", "h.0.attn.c_attn.weight", "ln_f.weight"), checkpoint.tensorNames());
            assertEquals(Map.of("total_size", "28"), checkpoint.indexMetadata());
            assertEquals(2, checkpoint.shards().size());
            assertArrayEquals(new float[] {1, 2, 3, 4}, checkpoint.readFloat32("wte"));
            assertArrayEquals(new float[] {5, 6}, checkpoint.readFloat32("h.0.attn.c_attn.weight"));
            assertArrayEquals(new float[] {7, 8}, checkpoint.readFloat32("ln_f.weight"));
            assertEquals(DType.F16, checkpoint.info("ln_f.weight").dtype());
            assertEquals(4, checkpoint.rawBytes("ln_f.weight").byteSize());
            assertTrue(checkpoint.shardOf("ln_f.weight").path().endsWith(SHARD_2));
            assertFalse(checkpoint.contains("lm_head.weight"));
            var e = assertThrows(SafetensorsException.class, () -> checkpoint.info("lm_head.weight"));
            assertTrue(e.getMessage().contains("no tensor named 'lm_head.weight'"), e.getMessage());
        }
    }

    @Test
    void singleFileDirectoryLoads() throws IOException {
        new SafetensorsWriter().add("w", new float[] {1}, DType.F32, 1).write(dir.resolve("model.safetensors"));
        try (var checkpoint = ShardedSafetensors.open(dir)) {
            assertEquals(List.of("w"), checkpoint.tensorNames());
            assertTrue(checkpoint.indexMetadata().isEmpty());
        }
    }

    @Test
    void missingShardIsRejected() throws IOException {
        writeTwoShards();
        writeIndex("\"wte\": \"" + SHARD_1 + "\", \"lm_head.weight\": \"model-00003-of-00003.safetensors\"");
        assertTrue(rejected().getMessage().endsWith(
                "tensor 'lm_head.weight': shard 'model-00003-of-00003.safetensors' does not exist"));
    }

    @Test
    void tensorMissingFromItsShardIsRejected() throws IOException {
        writeTwoShards();
        writeIndex("\"wte\": \"" + SHARD_2 + "\"");
        assertTrue(rejected().getMessage().endsWith(
                "tensor 'wte' is mapped to shard '" + SHARD_2 + "', which does not contain it"));
    }

    @Test
    void pathEscapesAreRejected() throws IOException {
        writeTwoShards();
        Path outside = dir.resolveSibling(dir.getFileName() + "-outside.safetensors");
        Files.copy(dir.resolve(SHARD_1), outside);
        try {
            writeIndex("\"wte\": \"../" + outside.getFileName() + "\"");
            assertTrue(rejected().getMessage().endsWith("must not leave the index's directory ('..')"));
            writeIndex("\"wte\": \"sub/../" + SHARD_1 + "\"");
            assertTrue(rejected().getMessage().endsWith("must not leave the index's directory ('..')"));
            writeIndex("\"wte\": \"" + outside.toAbsolutePath() + "\"");
            assertTrue(rejected().getMessage().endsWith("must be a path relative to the index's directory"));
        } finally {
            Files.delete(outside);
        }
    }

    @Test
    void malformedIndexesAreRejected() throws IOException {
        writeTwoShards();
        writeIndex("\"wte\": 3");
        assertTrue(rejected().getMessage().endsWith("tensor 'wte': shard must be a file name string"));
        Files.writeString(dir.resolve(SafetensorsWriter.INDEX_FILE), "{\"weight_map\": []}");
        assertTrue(rejected().getMessage().contains("'weight_map' must be an object"));
        writeIndex("\"wte\": \"" + SHARD_1 + "\", \"wte\": \"" + SHARD_2 + "\"");
        assertTrue(rejected().getMessage().contains("not valid JSON: Duplicate field 'wte'"));
        Files.writeString(dir.resolve(SafetensorsWriter.INDEX_FILE), "[1]");
        assertTrue(rejected().getMessage().endsWith("must hold a JSON object"));
    }

    @Test
    void aCorruptShardIsRejectedWithItsName() throws IOException {
        writeTwoShards();
        Files.write(dir.resolve(SHARD_2), new byte[3]);
        writeIndex("\"wte\": \"" + SHARD_1 + "\", \"ln_f.weight\": \"" + SHARD_2 + "\"");
        assertTrue(rejected().getMessage().contains(SHARD_2 + ": file has 3 bytes"));
    }

    @Test
    void emptyDirectoryIsRejected() {
        assertTrue(rejected().getMessage().endsWith("holds neither model.safetensors nor model.safetensors.index.json"));
    }

    @Test
    void writeShardedSplitsInOrderAndWritesTheIndexLast() throws IOException {
        var writer = new SafetensorsWriter().putMetadata("format", "pt")
                .add("a", new float[4], DType.F32, 4)      // 16 bytes
                .add("b", new float[2], DType.F32, 2)      // 8 bytes: a+b = 24 fit in 24
                .add("c", new float[10], DType.F32, 10)    // 40 bytes: larger than a shard, alone
                .add("d", new float[] {9}, DType.BF16, 1); // 2 bytes
        writer.writeSharded(dir, 24);
        String expectedIndex = """
                {
                  "metadata": {
                    "total_size": 66
                  },
                  "weight_map": {
                    "a": "model-00001-of-00003.safetensors",
                    "b": "model-00001-of-00003.safetensors",
                    "c": "model-00002-of-00003.safetensors",
                    "d": "model-00003-of-00003.safetensors"
                  }
                }
                """;
        assertEquals(expectedIndex, Files.readString(dir.resolve(SafetensorsWriter.INDEX_FILE)));
        try (var checkpoint = ShardedSafetensors.open(dir)) {
            assertEquals(3, checkpoint.shards().size());
            assertArrayEquals(new float[] {9}, checkpoint.readFloat32("d"));
            assertEquals(Map.of("format", "pt"), checkpoint.shardOf("c").metadata());
        }
    }

    @Test
    void writeShardedWritesOneFileWhenEverythingFits() throws IOException {
        new SafetensorsWriter().add("a", new float[4], DType.F32, 4).writeSharded(dir, 1L << 30);
        try (var files = Files.list(dir)) {
            assertEquals(List.of(dir.resolve("model.safetensors")), files.toList());
        }
    }

    @Test
    void resavingRemovesCheckpointFilesOfTheEarlierSave() throws IOException {
        new SafetensorsWriter().add("old", new float[1], DType.F32, 1).writeSharded(dir, 1L << 30);
        var sharded = new SafetensorsWriter().add("a", new float[4], DType.F32, 4).add("b", new float[4], DType.F32, 4);
        sharded.writeSharded(dir, 16);
        Files.writeString(dir.resolve("config.json"), "{}");
        try (var checkpoint = ShardedSafetensors.open(dir)) {
            assertEquals(List.of("a", "b"), checkpoint.tensorNames(), "a stale model.safetensors would shadow the index");
        }
        new SafetensorsWriter().add("c", new float[1], DType.F32, 1).writeSharded(dir, 1L << 30);
        try (var files = Files.list(dir)) {
            assertEquals(List.of("config.json", "model.safetensors"),
                    files.map(path -> path.getFileName().toString()).sorted().toList());
        }
    }
}
