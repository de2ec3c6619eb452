package dev.loraflow.core.peft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.HalfFloats;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PeftAdapterTest {

    @TempDir
    Path dir;

    private static float[] random(long seed, int n) {
        var random = new SplittableRandom(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian() * 0.02f;
        }
        return values;
    }

    private static LoraWeights weights(String modulePath, int r, int in, int out, long seed) {
        return new LoraWeights(modulePath, r, in, out, random(seed, r * in), random(seed + 1, out * r));
    }

    private static PeftAdapter gpt2Adapter(int r) {
        LoraAdapterConfig config = LoraAdapterConfig.builder()
                .r(r).loraAlpha(2 * r).targetModules("c_attn").fanInFanOut(true)
                .baseModelNameOrPath("openai-community/gpt2").build();
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (int layer = 0; layer < 2; layer++) {
            String path = "transformer.h." + layer + ".attn.c_attn";
            modules.put(path, weights(path, r, 768, 2304, layer));
        }
        return new PeftAdapter(config, modules);
    }

    private Path adapterDir(String configJson, SafetensorsWriter weights) throws IOException {
        Path adapter = Files.createDirectories(dir.resolve("adapter"));
        Files.writeString(adapter.resolve("adapter_config.json"), configJson);
        weights.write(adapter.resolve("adapter_model.safetensors"));
        return adapter;
    }

    private static final String R4_CONFIG = "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}";

    private String rejection(Path adapter) {
        return assertThrows(PeftFormatException.class, () -> PeftAdapter.read(adapter)).getMessage();
    }

    @Test
    void gpt2AdapterUsesPeftKeyNamesAndShapes() throws IOException {
        int r = 8;
        PeftAdapter adapter = gpt2Adapter(r);
        adapter.write(dir, DType.F32);

        try (var file = SafetensorsFile.open(dir.resolve("adapter_model.safetensors"))) {
            assertEquals(Map.of("format", "pt"), file.metadata());
            assertEquals(List.of(
                            "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
                            "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
                            "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight",
                            "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"),
                    file.tensorNames());
            assertArrayEquals(new long[] {r, 768}, file.info("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight").shape());
            assertArrayEquals(new long[] {2304, r}, file.info("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight").shape());
            assertEquals(DType.F32, file.info("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight").dtype());
        }
        assertTrue(Files.readString(dir.resolve("adapter_config.json")).contains("\"fan_in_fan_out\": true,"));

        PeftAdapter read = PeftAdapter.read(dir);
        assertEquals(adapter, read);
        assertTrue(read.config().fanInFanOut());
        assertEquals(2.0, read.config().scaling("transformer.h.0.attn.c_attn"));
    }

    @Test
    void llamaAdapterRoundTripsInHalfPrecision() throws IOException {
        LoraAdapterConfig config = LoraAdapterConfig.builder().r(4).loraAlpha(8).targetModules("q_proj", "v_proj")
                .rankPattern(Map.of("v_proj", 2)).build();
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        modules.put("model.layers.0.self_attn.q_proj", weights("model.layers.0.self_attn.q_proj", 4, 64, 64, 1));
        modules.put("model.layers.0.self_attn.v_proj", weights("model.layers.0.self_attn.v_proj", 2, 64, 16, 3));
        PeftAdapter adapter = new PeftAdapter(config, modules);

        for (DType dtype : List.of(DType.BF16, DType.F16)) {
            Path out = dir.resolve(dtype.name());
            adapter.write(out, dtype);
            try (var file = SafetensorsFile.open(out.resolve("adapter_model.safetensors"))) {
                assertArrayEquals(new long[] {4, 64}, file.info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").shape());
                assertArrayEquals(new long[] {64, 4}, file.info("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").shape());
                assertArrayEquals(new long[] {16, 2}, file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape());
                assertEquals(dtype, file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight").dtype());
            }
            PeftAdapter read = PeftAdapter.read(out);
            assertEquals(List.copyOf(modules.keySet()), List.copyOf(read.modules().keySet()));
            for (LoraWeights original : modules.values()) {
                LoraWeights copy = read.modules().get(original.modulePath());
                assertEquals(original.r(), copy.r());
                for (int i = 0; i < original.b().length; i++) {
                    float expected = dtype == DType.BF16
                            ? HalfFloats.fromBf16(HalfFloats.toBf16(original.b()[i]))
                            : HalfFloats.fromF16(HalfFloats.toF16(original.b()[i]));
                    assertEquals(expected, copy.b()[i]);
                }
            }
        }
    }

    @Test
    void writeReplacesAnExistingAdapterWithoutLeftovers() throws IOException {
        gpt2Adapter(8).write(dir, DType.F32);
        gpt2Adapter(4).write(dir, DType.BF16);
        assertEquals(4, PeftAdapter.read(dir).config().r());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of("adapter_config.json", "adapter_model.safetensors"),
                    files.map(path -> path.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void missingLoraBIsRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", new float[4 * 8], DType.F32, 4, 8));
        assertTrue(rejection(adapter).endsWith("adapter_model.safetensors: module 'model.layers.0.self_attn.q_proj' has "
                + "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight but no "
                + "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"));
    }

    @Test
    void missingLoraAIsRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", new float[8 * 4], DType.F32, 8, 4));
        assertTrue(rejection(adapter).endsWith("module 'model.layers.0.self_attn.q_proj' has "
                + "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight but no "
                + "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    }

    @Test
    void mismatchedRanksAreRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("base_model.model.q_proj.lora_A.weight", new float[4 * 8], DType.F32, 4, 8)
                .add("base_model.model.q_proj.lora_B.weight", new float[8 * 3], DType.F32, 8, 3));
        assertTrue(rejection(adapter).endsWith(
                "module 'q_proj': lora_A is [4, 8] (rank 4) but lora_B is [8, 3]; lora_B must be [out, 4]"));
    }

    @Test
    void rankDifferentFromTheConfigIsRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("base_model.model.q_proj.lora_A.weight", new float[2 * 8], DType.F32, 2, 8)
                .add("base_model.model.q_proj.lora_B.weight", new float[8 * 2], DType.F32, 8, 2));
        assertTrue(rejection(adapter).endsWith("module 'q_proj' has rank 2 but adapter_config.json gives it r=4"));
    }

    @Test
    void nonMatrixFactorsAreRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("base_model.model.q_proj.lora_A.weight", new float[4 * 8], DType.F32, 4, 8, 1)
                .add("base_model.model.q_proj.lora_B.weight", new float[8 * 4], DType.F32, 8, 4));
        assertTrue(rejection(adapter).endsWith(
                "tensor 'base_model.model.q_proj.lora_A.weight' has shape [4, 8, 1]; LoRA factors are 2-D"));
    }

    @Test
    void integerFactorsAreRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .addRaw("base_model.model.q_proj.lora_A.weight", DType.I32, new byte[4 * 8 * 4], 4, 8)
                .add("base_model.model.q_proj.lora_B.weight", new float[8 * 4], DType.F32, 8, 4));
        assertTrue(rejection(adapter).endsWith(
                "tensor 'base_model.model.q_proj.lora_A.weight' has dtype I32; LoRA factors must be F32, F16 or BF16"));
    }

    @Test
    void doraAndOtherNonLoraTensorsAreRejectedByName() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("base_model.model.q_proj.lora_A.weight", new float[4 * 8], DType.F32, 4, 8)
                .add("base_model.model.q_proj.lora_B.weight", new float[8 * 4], DType.F32, 8, 4)
                .add("base_model.model.q_proj.lora_magnitude_vector", new float[8], DType.F32, 8)
                .add("base_model.model.embed_tokens.lora_embedding_A", new float[4 * 10], DType.F32, 4, 10)
                .add("base_model.model.score.weight", new float[8], DType.F32, 1, 8));
        String message = rejection(adapter);
        assertTrue(message.contains("adapter_model.safetensors: only lora_A/lora_B weights are supported, but it holds "), message);
        assertTrue(message.contains("'base_model.model.q_proj.lora_magnitude_vector' (DoRA magnitude vector; DoRA is not supported)"), message);
        assertTrue(message.contains("'base_model.model.embed_tokens.lora_embedding_A' (LoRA on an embedding layer is not supported)"), message);
        assertTrue(message.contains("'base_model.model.score.weight' (not a LoRA factor; modules_to_save copies"), message);
    }

    @Test
    void keysWithoutThePeftPrefixAreRejected() throws IOException {
        Path adapter = adapterDir(R4_CONFIG, new SafetensorsWriter()
                .add("q_proj.lora_A.weight", new float[4 * 8], DType.F32, 4, 8)
                .add("q_proj.lora_B.weight", new float[8 * 4], DType.F32, 8, 4));
        assertTrue(rejection(adapter).contains("'q_proj.lora_A.weight' (PEFT keys start with 'base_model.model.')"));
    }

    @Test
    void doraConfigIsRejected() throws IOException {
        Path adapter = adapterDir("{\"peft_type\": \"LORA\", \"r\": 4, \"use_dora\": true}", new SafetensorsWriter());
        assertTrue(rejection(adapter).endsWith("use_dora is true; DoRA adapters are not supported"));
    }

    @Test
    void pickleOnlyDirectoryIsRejected() throws IOException {
        Path adapter = Files.createDirectories(dir.resolve("legacy"));
        Files.writeString(adapter.resolve("adapter_config.json"), R4_CONFIG);
        Files.write(adapter.resolve("adapter_model.bin"), new byte[] {(byte) 0x80, 2});
        String message = rejection(adapter);
        assertTrue(message.contains("has only adapter_model.bin, a PyTorch pickle, which is not read"), message);
        assertTrue(message.contains("safe_serialization=True"), message);
    }

    @Test
    void missingFilesAreRejected() throws IOException {
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertTrue(rejection(empty).endsWith("empty: no adapter_model.safetensors"));
        new SafetensorsWriter().write(empty.resolve("adapter_model.safetensors"));
        assertTrue(rejection(empty).endsWith("empty: no adapter_config.json"));
        assertTrue(rejection(dir.resolve("absent")).endsWith("absent: not a directory"));
    }

    @Test
    void inconsistentInMemoryAdaptersAreRefused() {
        LoraAdapterConfig config = LoraAdapterConfig.builder().r(4).build();
        assertThrows(IllegalArgumentException.class, () -> new LoraWeights("q_proj", 4, 8, 8, new float[31], new float[32]));
        assertThrows(IllegalArgumentException.class, () -> new LoraWeights("q_proj", 4, 8, 8, new float[32], new float[33]));
        assertThrows(IllegalArgumentException.class,
                () -> new PeftAdapter(config, Map.of("q_proj", weights("q_proj", 2, 8, 8, 0))), "rank differs from config");
        assertThrows(IllegalArgumentException.class,
                () -> new PeftAdapter(config, Map.of("k_proj", weights("q_proj", 4, 8, 8, 0))), "key differs from path");
    }
}
