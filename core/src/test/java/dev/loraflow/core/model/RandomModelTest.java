package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.data.Batch;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RandomModelTest {

    private static final Gpt2Config GPT2 = new Gpt2Config(300, 16, 64, 3, 4, 128, 1e-5);
    private static final int BATCH = 2;
    private static final int SEQ = 12;

    private static DecoderConfig llama(boolean tied, int vocab) {
        return DecoderConfig.llama(vocab, 64, 96, 2, 4, 2, 16, 16, 1e-5, 10000, tied);
    }

    /** A batch of random token sequences, every token in the loss. */
    private static Batch randomBatch(int vocab, long seed) {
        Random random = new Random(seed);
        List<Example> examples = Stream.generate(() -> Example.unmasked(random.ints(SEQ, 0, vocab).toArray()))
                .limit(BATCH).toList();
        return new BatchSampler(examples, BATCH, SEQ, 0, seed, 0).next();
    }

    private static double std(float[] values) {
        double sum = 0;
        double sumSquares = 0;
        for (float value : values) {
            sum += value;
            sumSquares += (double) value * value;
        }
        double mean = sum / values.length;
        return Math.sqrt(sumSquares / values.length - mean * mean);
    }

    @Test
    void gpt2IsWrittenAsGpt2LmHeadModelSavesItAndLoads(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("gpt2");
        RandomModel.write(GPT2, 7, dir);
        try (SafetensorsFile file = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            assertEquals(Map.of("format", "pt"), file.metadata());
            assertTrue(file.contains("transformer.wte.weight") && file.contains("transformer.h.2.mlp.c_proj.bias"),
                    file.tensorNames().toString());
            assertFalse(file.contains("lm_head.weight"), "the tied head is not saved");
            assertEquals(ModelLayout.of(GPT2).weights().size(), file.tensorNames().size());
        }
        assertEquals(GPT2, ModelConfig.read(dir.resolve("config.json")));

        // Near-uniform predictions: the loss of a fresh model is close to ln V.
        Gpt2Model model = Gpt2Model.load(dir, null, 0);
        Batch batch = randomBatch(GPT2.vocabSize(), 1);
        double loss = model.forward(model.newWorkspace(BATCH, SEQ), batch.inputIds(), batch.labels(), false, 0);
        assertEquals(Math.log(GPT2.vocabSize()), loss, 0.05);
    }

    @Test
    void gpt2WeightsFollowTransformersInitialisation() {
        Map<String, float[]> weights = RandomModel.initialWeights(GPT2, 3);
        double residualStd = 0.02 / Math.sqrt(2 * GPT2.numLayers());
        for (var entry : weights.entrySet()) {
            String name = entry.getKey();
            float[] values = entry.getValue();
            if (name.contains("ln_") && name.endsWith(".weight")) {
                assertTrue(allEqual(values, 1f), name);
            } else if (name.endsWith(".bias")) {
                assertTrue(allEqual(values, 0f), name);
            } else {
                double expected = name.endsWith("c_proj.weight") ? residualStd : 0.02;
                // With n ≥ 1024 draws the sample std is within 10 % of σ by more than 4 standard errors.
                assertEquals(expected, std(values), 0.1 * expected, name);
            }
        }
    }

    private static boolean allEqual(float[] values, float expected) {
        for (float value : values) {
            if (value != expected) {
                return false;
            }
        }
        return true;
    }

    @Test
    void llamaIsWrittenWithAndWithoutATiedHeadAndLoads(@TempDir Path tmp) throws IOException {
        for (boolean tied : new boolean[] {false, true}) {
            DecoderConfig config = llama(tied, 320);
            Path dir = tmp.resolve("llama-" + tied);
            RandomModel.write(config, 11, dir);
            assertEquals(config, ModelConfig.read(dir.resolve("config.json")));
            try (SafetensorsFile file = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
                assertTrue(file.contains("model.layers.1.self_attn.k_proj.weight"));
                assertEquals(!tied, file.contains("lm_head.weight"));
            }
            Map<String, float[]> weights = CheckpointWeights.read(dir, ModelLayout.of(config));
            assertEquals(0.02, std(weights.get("model.layers.0.mlp.down_proj.weight")), 0.002);
            assertTrue(allEqual(weights.get("model.norm.weight"), 1f));
            DecoderModel model = new DecoderModel(config, weights, (LoraAdapterConfig) null, 0);
            Batch batch = randomBatch(config.vocabSize(), 2);
            double loss = model.forward(model.newWorkspace(BATCH, SEQ), batch.inputIds(), batch.labels(), false, 0);
            assertEquals(Math.log(config.vocabSize()), loss, 0.05, "tied=" + tied);
        }
    }

    @Test
    void aVocabularyWithRoomGetsTheByteLevelTokenizer(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("with");
        RandomModel.write(GPT2, 1, dir);
        JsonNode config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        assertEquals(256, config.get("eos_token_id").intValue());
        assertEquals(256, config.get("bos_token_id").intValue());
        try (Tokenizer tokenizer = Tokenizer.load(dir.resolve(Tokenizer.FILE_NAME))) {
            assertArrayEquals(new int[] {'h', 'i', 256}, tokenizer.encode("hi<|endoftext|>"));
            assertEquals(256, tokenizer.eosTokenId().orElseThrow());
        }

        Path small = tmp.resolve("small");
        RandomModel.write(llama(true, 256), 1, small);
        try (Stream<Path> files = Files.list(small)) {
            assertEquals(List.of("config.json", "model.safetensors"),
                    files.map(file -> file.getFileName().toString()).sorted().toList());
        }
        assertFalse(new ObjectMapper().readTree(small.resolve("config.json").toFile()).has("eos_token_id"));
    }

    @Test
    void theSeedAloneDecidesTheBytes(@TempDir Path tmp) throws IOException {
        RandomModel.write(GPT2, 5, tmp.resolve("a"));
        RandomModel.write(GPT2, 5, tmp.resolve("b"));
        RandomModel.write(GPT2, 6, tmp.resolve("c"));
        for (String name : List.of("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")) {
            assertArrayEquals(Files.readAllBytes(tmp.resolve("a").resolve(name)), Files.readAllBytes(tmp.resolve("b").resolve(name)),
                    name);
        }
        assertEquals(Files.size(tmp.resolve("a/model.safetensors")), Files.size(tmp.resolve("c/model.safetensors")));
        assertFalse(Arrays.equals(Files.readAllBytes(tmp.resolve("a/model.safetensors")),
                Files.readAllBytes(tmp.resolve("c/model.safetensors"))));
        // Every tensor gets its own stream: no two weight matrices share their values.
        Map<String, float[]> weights = RandomModel.initialWeights(GPT2, 5);
        assertFalse(weights.get("h.0.attn.c_attn.weight")[0] == weights.get("h.1.attn.c_attn.weight")[0]);
    }

    /**
     * SHA-256 of model.safetensors as the build before streaming wrote it ({@code init-model --arch A --layers 2
     * --hidden 320 --heads 4 --vocab 5000 --context 64 --intermediate 896 --dtype D --seed 7}, 2026-12-05), when each
     * tensor was drawn whole, one draw after the other: the 5000 × 320 embedding spans two of the writer's runs and
     * 25 parallel ones.
     */
    private static final Map<String, String> DIGESTS_BEFORE_STREAMING = Map.of(
            "llama F32", "ded7e060173e646d95b1e70b5d8f659eb9852c7c33e26e253719db520d36d627",
            "gemma F32", "e1f09dc32017c9e23f454a870c2d17e2adf4853e39dade80873852a31a534ecf",
            "gpt2 F32", "3eeb350b738372ae68473758e4ac8dc6341cd3f290e8bc72dddbe1d7e5195311",
            "llama BF16", "223e1965f49a87e48ec8e52f862d4ae19e6b646b337bb4ae5c998dbaa529fb25",
            "gemma BF16", "8be8205565822cb4a65972d9372d2fc97ad6da51152696afd4f94ad163ced857",
            "gpt2 BF16", "9d93af6b237052d7658ac4e3b957e68e63415703ded4682a602f5380371e80e4",
            "llama F16", "52926e831a3c25c236dd74ef48382fec85af4001b7333d06b13a37c647f3d49d",
            "gemma F16", "520da0be09ed0b7a96ac303ba57bb4a2ff58812238fad1d5ae2983bd6eaf4f64",
            "gpt2 F16", "e6d94a0509e3ceff9403052cf6f62ae8ca8404087555839c5d4eb73428ec9c39");

    @Test
    void streamedTensorsAreTheBytesOfTheWholeTensorsDrawnInOrder(@TempDir Path tmp) throws Exception {
        Map<String, ModelConfig> configs = Map.of(
                "llama", DecoderConfig.of(DecoderConfig.Family.LLAMA, 5000, 320, 896, 2, 4, 4, 80, 64, 1e-5, 10000, false),
                "gemma", DecoderConfig.of(DecoderConfig.Family.GEMMA, 5000, 320, 896, 2, 4, 4, 80, 64, 1e-6, 10000, true),
                "gpt2", new Gpt2Config(5000, 64, 320, 2, 4, 896, 1e-5));
        for (var config : configs.entrySet()) {
            for (DType dtype : List.of(DType.F32, DType.BF16, DType.F16)) {
                String key = config.getKey() + " " + dtype;
                Path model = tmp.resolve(config.getKey() + "-" + dtype);
                RandomModel.write(config.getValue(), 7, dtype, model);
                byte[] digest = MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(model.resolve("model.safetensors")));
                assertEquals(DIGESTS_BEFORE_STREAMING.get(key), HexFormat.of().formatHex(digest), key);
            }
        }
        // The drawn values are those of one sequential stream per tensor, whichever core drew a run.
        ModelConfig llama = configs.get("llama");
        List<WeightSpec> specs = ModelLayout.of(llama).weights();
        int embedding = 0;
        assertEquals(WeightSpec.Role.TOKEN_EMBEDDING, specs.get(embedding).role());
        float[] drawn = RandomModel.initialWeights(llama, 7).get(specs.get(embedding).name());
        Rng rng = new Rng(Rng.hash(7, embedding));
        for (int i = 0; i < drawn.length; i++) {
            assertEquals((float) (RandomModel.INITIALIZER_RANGE * rng.nextGaussian()), drawn[i], "element " + i);
        }
    }

    @Test
    void anExistingModelDirectoryIsNeverOverwritten(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("config.json"), "{}");
        var e = assertThrows(FileAlreadyExistsException.class, () -> RandomModel.write(GPT2, 1, tmp));
        assertTrue(e.getMessage().contains("not empty"), e.getMessage());
        assertEquals("{}", Files.readString(tmp.resolve("config.json")));
    }
}
