package dev.loraflow.core.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.ModelDigest;
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
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
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

    /**
     * A recorded base digest is checked against digests taken from the merge's own reads of the base, and what the
     * merge does not copy — headers, a tied head it leaves out, tensors it converts, shards read out of their order —
     * is read for the digest all the same: a change anywhere in the base is refused before anything is published.
     */
    @ParameterizedTest(name = "stored {0}, written {1}")
    @CsvSource({"BF16, BASE", "F16, F32"})
    void aRecordedBaseDigestIsCheckedAgainstEveryByteOfTheBaseInTheSamePass(DType stored, LoraMerge.OutputDType output)
            throws IOException {
        ModelConfig config = MergeFixtures.GPT2;
        Map<String, float[]> weights = MergeFixtures.weights(config, 5);
        long dataBytes = weights.values().stream().mapToLong(values -> values.length * 4L).sum();
        // the hub's gpt2 layout (a tied lm_head saved), in three shards in save order, not the merged file's order
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, weights, stored, false,
                Map.of("lm_head.weight", new float[] {0.5f, 0.25f}), dataBytes / 6);
        assertTrue(Files.exists(base.resolve(SafetensorsWriter.INDEX_FILE)), "the base is sharded");
        PeftAdapter adapter = MergeFixtures.adapter(config, MergeFixtures.lora(config), 9, 0.3f);
        String baseSha256 = ModelDigest.of(base);
        LoraMerge.Options options = LoraMerge.Options.defaults().withDtype(output);

        LoraMerge.Result hashedFirst = LoraMerge.merge(base, adapter, null, temp.resolve("a"), options);
        LoraMerge.Result hashedAlong = LoraMerge.merge(base, adapter, null, temp.resolve("b"),
                options.withExpectedBaseSha256(baseSha256));
        assertEquals(baseSha256, hashedFirst.baseSha256());
        assertEquals(hashedFirst.weightsSha256(), hashedAlong.weightsSha256());
        Path merged = temp.resolve("b").resolve(SafetensorsWriter.SINGLE_FILE);
        assertArrayEquals(Files.readAllBytes(temp.resolve("a").resolve(SafetensorsWriter.SINGLE_FILE)),
                Files.readAllBytes(merged));
        assertEquals(Sha256.of(merged), hashedAlong.weightsSha256());

        // one bit of the head the merge leaves out, which it never reads to copy
        try (ShardedSafetensors shards = ShardedSafetensors.open(base)) {
            SafetensorsFile shard = shards.shardOf("lm_head.weight");
            try (FileChannel file = FileChannel.open(shard.path(), StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                ByteBuffer first = ByteBuffer.allocate(1);
                file.read(first, shard.fileOffset("lm_head.weight"));
                file.write(ByteBuffer.wrap(new byte[] {(byte) (first.get(0) ^ 1)}), shard.fileOffset("lm_head.weight"));
            }
        }
        Path out = temp.resolve("c");
        MergeException mismatch = assertThrows(MergeException.class, () -> LoraMerge.merge(base, adapter, null, out,
                options.withExpectedBaseSha256(baseSha256)));
        assertEquals(MergeException.Kind.BASE_SHA256_MISMATCH, mismatch.kind());
        assertTrue(mismatch.getMessage().contains(ModelDigest.of(base)), mismatch.getMessage());
        assertFalse(Files.exists(out), "nothing is published");
    }
}
