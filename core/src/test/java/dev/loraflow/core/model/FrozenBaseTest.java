package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A checkpoint stored in BF16/F16, its linear weights kept mapped from the file, against the same
 * checkpoint read whole into float32: the weights are the same values, and the GEMMs sum them in the same
 * order, so the loss and every gradient must agree bit for bit.
 */
class FrozenBaseTest {

    @TempDir
    Path temp;

    static Stream<Arguments> models() {
        Gpt2Config gpt2 = new Gpt2Config(300, 32, 48, 2, 4, 96, 1e-5);
        DecoderConfig llama = DecoderConfig.llama(300, 48, 128, 2, 4, 2, 12, 32, 1e-5, 10000, false);
        DecoderConfig tied = DecoderConfig.llama(300, 48, 128, 2, 4, 2, 12, 32, 1e-5, 10000, true);
        return Stream.of(Arguments.of(gpt2, DType.BF16), Arguments.of(llama, DType.BF16), Arguments.of(llama, DType.F16),
                Arguments.of(tied, DType.BF16));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("models")
    void aHalfStoredModelTrainsExactlyAsItsFloat32Widening(ModelConfig config, DType dtype) throws IOException {
        Path directory = temp.resolve("base");
        RandomModel.write(config, 3, dtype, directory);
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(4).loraAlpha(8)
                .targetModules(new LoraAdapterConfig.TargetModules.AllLinear()).build();
        CausalLanguageModel mapped = CausalLanguageModel.load(directory, lora, 5);
        CausalLanguageModel widened = CausalLanguageModel.create(config,
                CheckpointWeights.read(directory, ModelLayout.of(config)), lora, 5);
        for (LoRALinear module : mapped.adaptedModules().values()) {
            assertEquals(dtype.name().toLowerCase(), module.frozenWeight().format(), module.name() + " stays as stored");
        }
        // a trained-looking adapter: B away from zero, the same in both
        Rng rng = new Rng(9);
        List<Parameter> mappedParameters = mapped.trainableParameters();
        List<Parameter> widenedParameters = widened.trainableParameters();
        for (int p = 0; p < mappedParameters.size(); p++) {
            float[] values = mappedParameters.get(p).value();
            for (int i = 0; i < values.length; i++) {
                values[i] = rng.nextUniform(0.1f);
            }
            System.arraycopy(values, 0, widenedParameters.get(p).value(), 0, values.length);
        }
        int batch = 2;
        int seqLen = 16;
        int[] ids = new int[batch * seqLen];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) Math.floorMod(rng.nextLong(), config.vocabSize());
        }
        CausalLanguageModel.Workspace mappedWs = mapped.newWorkspace(batch, seqLen);
        CausalLanguageModel.Workspace widenedWs = widened.newWorkspace(batch, seqLen);
        double loss = mapped.forward(mappedWs, ids, ids, true, 11);
        assertEquals(widened.forward(widenedWs, ids, ids, true, 11), loss, "loss");
        assertTrue(loss > 0);
        mapped.backward(mappedWs, 1f);
        widened.backward(widenedWs, 1f);
        for (int p = 0; p < mappedParameters.size(); p++) {
            assertArrayEquals(widenedParameters.get(p).grad(), mappedParameters.get(p).grad(), mappedParameters.get(p).name());
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("models")
    void quantizationReplacesTheLinearWeightsOnlyAndKeepsTheLossClose(ModelConfig config, DType dtype) throws IOException {
        Path directory = temp.resolve("base");
        RandomModel.write(config, 3, dtype, directory);
        CheckpointWeights.BaseWeights nf4 = CheckpointWeights.readFrozen(directory, ModelLayout.of(config), Quantization.NF4);
        CheckpointWeights.BaseWeights asStored = CheckpointWeights.readFrozen(directory, ModelLayout.of(config), Quantization.NONE);
        long nf4Bytes = 0;
        long storedBytes = 0;
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            if (spec.role() == WeightSpec.Role.LINEAR_WEIGHT) {
                assertEquals("nf4", nf4.frozen().get(spec.name()).format(), spec.name());
                nf4Bytes += nf4.frozen().get(spec.name()).bytes();
                storedBytes += asStored.frozen().get(spec.name()).bytes();
            } else if (spec.role() == WeightSpec.Role.OUTPUT_HEAD
                    || spec.role() == WeightSpec.Role.TOKEN_EMBEDDING && config instanceof DecoderConfig) {
                assertEquals(dtype.name().toLowerCase(), nf4.frozen().get(spec.name()).format(),
                        spec.name() + ": the head and embeddings are never quantized, but stay mapped");
            } else {
                assertTrue(nf4.arrays().containsKey(spec.name()), spec.name() + " stays float32");
            }
        }
        // 4 bits and a byte per 64 values against 16 bits
        assertTrue(nf4Bytes < storedBytes / 3.5, nf4Bytes + " vs " + storedBytes);
        CausalLanguageModel quantized = CausalLanguageModel.create(config, nf4.arrays(), nf4.frozen(), null, 0);
        CausalLanguageModel exact = CausalLanguageModel.create(config, asStored.arrays(), asStored.frozen(), null, 0);
        int[] ids = new int[32];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (i * 37 + 5) % config.vocabSize();
        }
        double quantizedLoss = quantized.forward(quantized.newWorkspace(1, 32), ids, ids, false, 0);
        double exactLoss = exact.forward(exact.newWorkspace(1, 32), ids, ids, false, 0);
        assertTrue(quantizedLoss != exactLoss && Math.abs(quantizedLoss - exactLoss) < 0.01 * exactLoss,
                quantizedLoss + " vs " + exactLoss);
    }
}
