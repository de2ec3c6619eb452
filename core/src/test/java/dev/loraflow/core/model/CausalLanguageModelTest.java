package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.random.Rng;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** What every architecture promises through {@link CausalLanguageModel}, checked on each of them. */
class CausalLanguageModelTest {

    private static final int BATCH = 2;
    private static final int SEQ = 5;

    static Stream<Arguments> models() {
        LoraAdapterConfig gpt2Lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).loraDropout(0.25)
                .targetModules("c_attn", "c_fc").build();
        LoraAdapterConfig llamaLora = LoraAdapterConfig.builder().r(2).loraAlpha(4).loraDropout(0.25)
                .targetModules("q_proj", "v_proj", "down_proj").build();
        DecoderConfig llama = DecoderModelTest.config(false);
        return Stream.of(
                Arguments.of("gpt2", Gpt2ModelTest.TINY, Gpt2ModelTest.randomWeights(Gpt2ModelTest.TINY, 1), gpt2Lora),
                Arguments.of("llama", llama, DecoderModelTest.randomWeights(llama, 0.5, 1), llamaLora));
    }

    private static CausalLanguageModel adaptedModel(ModelConfig config, Map<String, float[]> weights,
                                                    LoraAdapterConfig lora, long seed) {
        CausalLanguageModel model = CausalLanguageModel.create(config, weights, lora, seed);
        Rng rng = new Rng(seed + 100);
        for (LoRALinear module : model.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.3f);
            }
        }
        return model;
    }

    private static int[] ids(int vocab, long seed) {
        Rng rng = new Rng(seed);
        int[] ids = new int[BATCH * SEQ];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) Math.floorMod(rng.nextLong(), vocab);
        }
        return ids;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void labelsAreShiftedAndMinus100IsNotCounted(String arch, ModelConfig config, Map<String, float[]> weights,
                                                LoraAdapterConfig lora) {
        CausalLanguageModel model = adaptedModel(config, weights, lora, 3);
        int[] inputIds = ids(config.vocabSize(), 5);
        int[] labels = inputIds.clone();
        labels[3] = Softmax.IGNORE_INDEX;
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ);

        double loss = model.forward(ws, inputIds, labels, false, 0);
        float[] logits = ws.logits().clone();

        // Position t predicts labels[t + 1]; a sequence's last position and the ignored label count for nothing.
        assertEquals(BATCH * (SEQ - 1) - 1, ws.countedTokens());
        double expected = 0;
        for (int row = 0; row < BATCH * SEQ; row++) {
            int t = row % SEQ;
            if (t + 1 < SEQ && labels[row + 1] != Softmax.IGNORE_INDEX) {
                expected += crossEntropy(logits, row, config.vocabSize(), labels[row + 1]);
            }
        }
        assertEquals(expected / ws.countedTokens(), loss, 1e-5 * loss);
        assertTrue(Double.isNaN(model.forward(ws, inputIds, null, false, 0)));
        assertArrayEquals(logits, ws.logits());
        assertThrows(IllegalStateException.class, () -> model.backward(ws, 1f), "no labels, no backward");
    }

    private static double crossEntropy(float[] logits, int row, int vocab, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < vocab; v++) {
            max = Math.max(max, logits[row * vocab + v]);
        }
        double sum = 0;
        for (int v = 0; v < vocab; v++) {
            sum += Math.exp(logits[row * vocab + v] - max);
        }
        return max + Math.log(sum) - logits[row * vocab + target];
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void dLossScalesEveryGradientAndGradientsAccumulate(String arch, ModelConfig config, Map<String, float[]> weights,
                                                        LoraAdapterConfig lora) {
        CausalLanguageModel model = adaptedModel(config, weights, lora, 3);
        int[] inputIds = ids(config.vocabSize(), 6);
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ);
        List<Parameter> parameters = model.trainableParameters();
        assertEquals(2 * model.adaptedModules().size(), parameters.size());

        model.forward(ws, inputIds, inputIds, true, 9);
        model.backward(ws, 1f);
        float[][] full = parameters.stream().map(p -> p.grad().clone()).toArray(float[][]::new);
        parameters.forEach(Parameter::zeroGrad);
        for (int pass = 0; pass < 2; pass++) {
            model.forward(ws, inputIds, inputIds, true, 9);
            model.backward(ws, 0.5f);
        }
        for (int i = 0; i < full.length; i++) {
            assertTrue(Math.abs(full[i][0]) > 0 || Math.abs(full[i][full[i].length - 1]) > 0, parameters.get(i).name());
            assertArrayEquals(full[i], parameters.get(i).grad(), 1e-6f, parameters.get(i).name());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void anAdapterMovesBetweenModelsAndMergesIntoTheSameFunction(String arch, ModelConfig config,
                                                                Map<String, float[]> weights, LoraAdapterConfig lora) {
        CausalLanguageModel trained = adaptedModel(config, weights, lora, 3);
        int[] inputIds = ids(config.vocabSize(), 7);
        CausalLanguageModel.Workspace ws = trained.newWorkspace(BATCH, SEQ);
        trained.forward(ws, inputIds, null, false, 0);
        float[] expected = ws.logits().clone();

        PeftAdapter adapter = trained.toPeftAdapter();
        CausalLanguageModel fresh = CausalLanguageModel.create(config, weights, lora, 4);
        CausalLanguageModel.Workspace freshWs = fresh.newWorkspace(BATCH, SEQ);
        fresh.forward(freshWs, inputIds, null, false, 0);
        assertNotEquals(expected[0], freshWs.logits()[0], "B starts at zero, so only the loaded adapter changes the output");
        fresh.loadAdapter(adapter);
        fresh.forward(freshWs, inputIds, null, false, 0);
        assertArrayEquals(expected, freshWs.logits());

        Map<String, float[]> baseCopies = new java.util.HashMap<>();
        weights.forEach((name, value) -> baseCopies.put(name, value.clone()));
        fresh.merge();
        fresh.forward(freshWs, inputIds, null, false, 0);
        assertArrayEquals(expected, freshWs.logits(), 1e-4f);
        fresh.unmerge();
        weights.forEach((name, value) -> assertArrayEquals(baseCopies.get(name), value, name));
        fresh.forward(freshWs, inputIds, null, false, 0);
        assertArrayEquals(expected, freshWs.logits());

        CausalLanguageModel other = CausalLanguageModel.create(config, weights,
                lora.toBuilder().r(3).build(), 4);
        assertThrows(IllegalArgumentException.class, () -> other.loadAdapter(adapter));
        assertThrows(IllegalArgumentException.class, () -> trained.forward(other.newWorkspace(BATCH, SEQ), inputIds, null,
                false, 0));
    }
}
