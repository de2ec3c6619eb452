package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.optim.Parameter;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Gradient checkpointing recomputes each block's forward in the backward from the block's saved input,
 * with the same dropout: the loss, logits and every adapter gradient are the same bits as without it,
 * for every architecture (GPT-2 and each decoder family, sandwich norms and fused projections included).
 */
class GradientCheckpointingTest {

    private static final int BATCH = 2;
    private static final int SEQ = 7;

    static Stream<Arguments> configs() {
        return Stream.concat(Stream.of(TinyModels.GPT2), TinyModels.DECODER_FAMILIES.stream())
                .map(config -> Arguments.of(TinyModels.name(config), config));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configs")
    void gradientsAreBitIdenticalToTheNonCheckpointedRun(String name, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 11);
        int[] tokens = TinyModels.randomIds(BATCH * SEQ, config.vocabSize(), 5);
        int[] otherTokens = TinyModels.randomIds(BATCH * SEQ, config.vocabSize(), 6);

        List<float[]> plain = gradients(model, model.newWorkspace(BATCH, SEQ, false), tokens, otherTokens);
        List<float[]> checkpointed = gradients(model, model.newWorkspace(BATCH, SEQ, true), tokens, otherTokens);

        assertEquals(plain.size(), checkpointed.size());
        for (int i = 0; i < plain.size(); i++) {
            assertArrayEquals(plain.get(i), checkpointed.get(i), name + " result " + i + " differs");
        }
        // The comparison is not vacuous: dropout is on and the gradients are not all zero.
        double gradientMass = 0;
        for (Parameter parameter : model.trainableParameters()) {
            for (float g : parameter.grad()) {
                gradientMass += Math.abs(g);
            }
        }
        assertTrue(gradientMass > 0, name + ": no gradient at all");
    }

    /**
     * Two micro-batches in training mode with different dropout keys, accumulating, then the loss, the
     * logits' gradient and every parameter's gradient: a slot reused across blocks and across passes
     * must leave nothing behind.
     */
    private static List<float[]> gradients(CausalLanguageModel model, CausalLanguageModel.Workspace ws, int[] first,
                                           int[] second) {
        model.trainableParameters().forEach(Parameter::zeroGrad);
        List<float[]> results = new ArrayList<>();
        int[][] batches = {first, second};
        for (int pass = 0; pass < batches.length; pass++) {
            double loss = model.forward(ws, batches[pass], batches[pass], true, 100 + pass);
            results.add(new float[] {(float) loss, (float) (loss - (float) loss)});
            results.add(ws.logits().clone());
            model.backward(ws, 0.5f);
            results.add(ws.logits().clone());
        }
        for (Parameter parameter : model.trainableParameters()) {
            results.add(parameter.grad().clone());
        }
        return results;
    }
}
