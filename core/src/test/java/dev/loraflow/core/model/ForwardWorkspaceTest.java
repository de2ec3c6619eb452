package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.lora.LoRALinear;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link CausalLanguageModel#newForwardWorkspace}, for every architecture (GPT-2 and each decoder family, sandwich norms
 * and fused projections included), with and without adapters: the same loss and logits bit for bit as a workspace for
 * the backward, pass after pass on one workspace; exactly the bytes {@link CausalLanguageModel#forwardWorkspaceBytes}
 * counts before any model exists (every array it holds, found by walking its fields, each once); and a training
 * forward or a backward on it refused.
 */
class ForwardWorkspaceTest {

    private static final int BATCH = 2;
    private static final int SEQ = 7;

    static Stream<Arguments> models() {
        return Stream.concat(Stream.of(TinyModels.GPT2), TinyModels.DECODER_FAMILIES.stream())
                .flatMap(config -> Stream.of(false, true)
                        .map(adapted -> Arguments.of(TinyModels.name(config), config, adapted)));
    }

    private static CausalLanguageModel model(ModelConfig config, boolean adapted) {
        return adapted ? TinyModels.adapted(config, 7) : CausalLanguageModel.create(config, TinyModels.weights(config, 7), null, 7);
    }

    @ParameterizedTest(name = "{0} adapted={2}")
    @MethodSource("models")
    void lossesAndLogitsAreThoseOfAWorkspaceForTheBackward(String name, ModelConfig config, boolean adapted) {
        CausalLanguageModel model = model(config, adapted);
        CausalLanguageModel.Workspace full = model.newWorkspace(BATCH, SEQ, false);
        CausalLanguageModel.Workspace forwardOnly = model.newForwardWorkspace(BATCH, SEQ);
        for (int pass = 0; pass < 3; pass++) {
            int[] tokens = TinyModels.randomIds(BATCH * SEQ, config.vocabSize(), 5 + pass);
            int[] labels = pass == 2 ? null : tokens;

            double expected = model.forward(full, tokens, labels, false, 0);
            double actual = model.forward(forwardOnly, tokens, labels, false, 0);

            assertEquals(Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(actual),
                    name + " pass " + pass + ": " + expected + " vs " + actual);
            assertArrayEquals(full.logits(), forwardOnly.logits(), name + " pass " + pass);
            assertEquals(full.countedTokens(), forwardOnly.countedTokens());
        }
        assertTrue(Double.isFinite(model.forward(forwardOnly, TinyModels.randomIds(BATCH * SEQ, config.vocabSize(), 9),
                TinyModels.randomIds(BATCH * SEQ, config.vocabSize(), 10), false, 0)));
    }

    @ParameterizedTest(name = "{0} adapted={2}")
    @MethodSource("models")
    void theCountIsWhatTheWorkspaceAllocates(String name, ModelConfig config, boolean adapted) throws IllegalAccessException {
        CausalLanguageModel model = model(config, adapted);
        for (int[] shape : new int[][] {{1, 1}, {BATCH, SEQ}, {3, config.maxPositions()}}) {
            CausalLanguageModel.Workspace workspace = model.newForwardWorkspace(shape[0], shape[1]);

            assertEquals(HeldArrays.bytes(workspace), CausalLanguageModel.forwardWorkspaceBytes(config,
                    adapted ? TinyModels.lora(config) : null, shape[0], shape[1]), name + " " + shape[0] + " × " + shape[1]);
        }
        // what it leaves out: the gradients' buffers, the adapters' inputs, the residual entering every block
        long checkpointed = HeldArrays.bytes(model.newWorkspace(BATCH, SEQ, true));
        long forward = HeldArrays.bytes(model.newForwardWorkspace(BATCH, SEQ));
        assertTrue(4 * forward < 3 * checkpointed, name + ": " + forward + " bytes against " + checkpointed
                + " checkpointed for the backward");
    }

    @ParameterizedTest(name = "{0} adapted={2}")
    @MethodSource("models")
    void aTrainingForwardAndABackwardAreRefused(String name, ModelConfig config, boolean adapted) {
        CausalLanguageModel model = model(config, adapted);
        CausalLanguageModel.Workspace workspace = model.newForwardWorkspace(BATCH, SEQ);
        int[] tokens = TinyModels.randomIds(BATCH * SEQ, config.vocabSize(), 5);

        assertThrows(IllegalArgumentException.class, () -> model.forward(workspace, tokens, tokens, true, 1));
        model.forward(workspace, tokens, tokens, false, 0);
        assertThrows(IllegalStateException.class, () -> model.backward(workspace, 1f));
    }

    @Test
    void aModulesForwardActivationsRefuseDropoutAndTheBackward() {
        LoRALinear linear = TinyModels.adapted(TinyModels.LLAMA, 7).adaptedModules().values().iterator().next();
        LoRALinear.Activations activations = linear.newForwardActivations(2);
        float[] x = new float[2 * linear.inFeatures()];
        float[] y = new float[2 * linear.outFeatures()];

        assertThrows(IllegalArgumentException.class, () -> linear.forward(x, y, 2, activations, true, 1));
        linear.forward(x, y, 2, activations, false, 0);
        assertThrows(IllegalStateException.class, () -> linear.backward(x, y, new float[x.length], 2, activations, false));
    }
}
