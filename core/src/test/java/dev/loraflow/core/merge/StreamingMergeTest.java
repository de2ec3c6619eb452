package dev.loraflow.core.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import dev.loraflow.core.safetensors.ShardedSafetensors;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The streaming merge (tensor by tensor, unchanged tensors copied from the mapped base) against the
 * in-memory merge it replaced — every tensor read whole, the targets merged, everything handed to one
 * writer — written out here as the reference: the two files must be the same bytes.
 */
class StreamingMergeTest {

    @TempDir
    Path temp;

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(MergeFixtures.GPT2, DType.F32, LoraMerge.OutputDType.BASE),
                Arguments.of(MergeFixtures.GPT2, DType.BF16, LoraMerge.OutputDType.F32),
                Arguments.of(MergeFixtures.LLAMA, DType.BF16, LoraMerge.OutputDType.BASE),
                Arguments.of(MergeFixtures.LLAMA, DType.F16, LoraMerge.OutputDType.BF16),
                Arguments.of(MergeFixtures.LLAMA, DType.F32, LoraMerge.OutputDType.F16));
    }

    @ParameterizedTest(name = "{0} stored {1}, written {2}")
    @MethodSource("cases")
    void streamingOutputIsByteIdenticalToTheInMemoryMerge(ModelConfig config, DType stored, LoraMerge.OutputDType output)
            throws IOException {
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, MergeFixtures.weights(config, 5), stored, true);
        PeftAdapter adapter = MergeFixtures.adapter(config, MergeFixtures.lora(config), 9, 0.3f);
        LoraMerge.Result result = LoraMerge.merge(base, adapter, "feed", temp.resolve("merged"),
                LoraMerge.Options.defaults().withDtype(output));

        Path merged = temp.resolve("merged").resolve(SafetensorsWriter.SINGLE_FILE);
        Path reference = temp.resolve("reference.safetensors");
        inMemoryMerge(base, ModelLayout.of(config), adapter, output, result.baseSha256()).write(reference);
        assertArrayEquals(Files.readAllBytes(reference), Files.readAllBytes(merged));
        assertEquals(Sha256.of(merged), result.weightsSha256(), "the digest taken while writing is the file's");
    }

    /** The merge as it was before it streamed. */
    private static SafetensorsWriter inMemoryMerge(Path baseDirectory, ModelLayout layout, PeftAdapter adapter,
                                                   LoraMerge.OutputDType output, String baseSha256) throws IOException {
        Map<String, LoraMerge.Target> targets = new LinkedHashMap<>();
        LoraMerge.plan(layout, adapter).forEach(target -> targets.put(target.tensor, target));
        var writer = new SafetensorsWriter().putMetadata("format", "pt")
                .putMetadata(LoraMerge.BASE_MODEL_SHA256, baseSha256).putMetadata(LoraMerge.ADAPTER_SHA256, "feed");
        try (ShardedSafetensors base = ShardedSafetensors.open(baseDirectory)) {
            for (String name : base.tensorNames()) {
                String canonical = layout.resolveName(name);
                if (layout.config().tieWordEmbeddings() && canonical.equals(ModelLayout.OUTPUT_HEAD + ".weight")) {
                    continue;
                }
                TensorInfo info = base.info(name);
                DType dtype = output.of(info.dtype());
                LoraMerge.Target target = targets.get(canonical);
                if (target != null) {
                    float[] weight = base.readFloat32(name);
                    target.merge(weight, weight);
                    writer.add(name, weight, dtype, info.shape());
                } else if (dtype == info.dtype()) {
                    writer.addRaw(name, dtype, base.rawBytes(name).toArray(ValueLayout.JAVA_BYTE), info.shape());
                } else {
                    writer.add(name, base.readFloat32(name), dtype, info.shape());
                }
            }
        }
        return writer;
    }

    /** F16 goes through float32; BF16 written as BF16 is merged in its own bytes. */
    @ParameterizedTest(name = "stored {0}")
    @ValueSource(strings = {"F16", "BF16"})
    void aModuleThatOverflowsWhileStreamingLeavesNoOutputBehind(DType stored) throws IOException {
        ModelConfig config = MergeFixtures.LLAMA;
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, MergeFixtures.weights(config, 5), stored, false);
        PeftAdapter adapter = MergeFixtures.adapter(config, MergeFixtures.lora(config), 9, 0.3f);
        // finite factors whose product overflows float32: found only as that tensor is merged and written
        Map<String, LoraWeights> modules = new LinkedHashMap<>(adapter.modules());
        LoraWeights first = modules.values().iterator().next();
        float[] huge = first.b().clone();
        java.util.Arrays.fill(huge, 3e38f);
        modules.put(first.modulePath(), new LoraWeights(first.modulePath(), first.r(), first.inFeatures(),
                first.outFeatures(), first.a(), huge));
        Path out = temp.resolve("merged");
        MergeException error = assertThrows(MergeException.class, () -> LoraMerge.merge(base,
                new PeftAdapter(adapter.config(), modules), null, out, LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.NON_FINITE, error.kind());
        assertTrue(error.getMessage().contains(first.modulePath() + ": merging gives Infinity at "), error.getMessage());
        assertFalse(Files.exists(out), "no half-written model directory");
        try (SafetensorsFile unchanged = SafetensorsFile.open(base.resolve("model.safetensors"))) {
            assertEquals(stored, unchanged.tensors().getFirst().dtype());
        }
    }
}
