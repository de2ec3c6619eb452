package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Checkpoints as the Hub ships them — HF tensor names, half-precision dtypes, shards — load as the F32 original does. */
class HfCheckpointTest {

    private static final int BATCH = 2;
    private static final int SEQ = 6;

    @TempDir
    Path temp;

    static Stream<Arguments> models() {
        DecoderConfig llama = DecoderModelTest.config(false);
        return Stream.of(
                Arguments.of("gpt2", Gpt2ModelTest.TINY, Gpt2ModelTest.randomWeights(Gpt2ModelTest.TINY, 1)),
                Arguments.of("llama", llama, DecoderModelTest.randomWeights(llama, 0.5, 1)));
    }

    /** Writes the weights under the names {@code save_pretrained} gives them, as {@code dtype}, in shards. */
    private static Path write(Path directory, ModelConfig config, Map<String, float[]> weights, DType dtype)
            throws IOException {
        ModelLayout layout = ModelLayout.of(config);
        SafetensorsWriter writer = new SafetensorsWriter().putMetadata("format", "pt");
        for (Map.Entry<String, float[]> weight : weights.entrySet()) {
            String name = weight.getKey();
            int dot = name.lastIndexOf('.');
            String savedName = layout.peftModulePath(name.substring(0, dot)) + name.substring(dot);
            writer.add(savedName, weight.getValue(), dtype, layout.weight(name).shape());
        }
        Files.createDirectories(directory);
        writer.writeSharded(directory, writer.dataBytes() / 3);
        Files.writeString(directory.resolve("config.json"), config.toJson());
        return directory;
    }

    private static double loss(Path directory) throws IOException {
        CausalLanguageModel model = CausalLanguageModel.load(directory, null, 0);
        Rng rng = new Rng(9);
        int[] ids = new int[BATCH * SEQ];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) Math.floorMod(rng.nextLong(), model.config().vocabSize());
        }
        return model.forward(model.newWorkspace(BATCH, SEQ), ids, ids, false, 0);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void halfPrecisionShardedCheckpointsLoseOnlyTheirPrecision(String arch, ModelConfig config,
                                                              Map<String, float[]> weights) throws IOException {
        double f32 = loss(write(temp.resolve("f32"), config, weights, DType.F32));
        double bf16 = loss(write(temp.resolve("bf16"), config, weights, DType.BF16));
        double f16 = loss(write(temp.resolve("f16"), config, weights, DType.F16));

        assertTrue(Files.exists(temp.resolve("bf16").resolve(SafetensorsWriter.INDEX_FILE)), "sharded");
        assertTrue(Math.abs(f32 - Math.log(config.vocabSize())) > 0.05,
                "the weights must matter for the comparison to mean anything: loss " + f32);
        // BF16 keeps 8 significant bits (relative rounding ≤ 2⁻⁹), F16 11 (≤ 2⁻¹²).
        assertNotEquals(f32, bf16, "rounded weights give another loss");
        assertEquals(f32, bf16, 1e-2 * f32, "bf16");
        assertEquals(f32, f16, 2e-3 * f32, "f16");
        assertTrue(Math.abs(f16 - f32) < Math.abs(bf16 - f32), "f16 is the more precise: " + f16 + " vs " + bf16);
    }
}
