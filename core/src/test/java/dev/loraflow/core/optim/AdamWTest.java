package dev.loraflow.core.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class AdamWTest {

    @Test
    void matchesTheAlgorithmInDoubleOverManySteps() {
        Random random = new Random(1);
        int n = 37; // a vector body and a scalar tail
        Parameter parameter = new Parameter("p", gaussian(random, n));
        double[] p = toDouble(parameter.value());
        double[] m = new double[n];
        double[] v = new double[n];
        AdamW.Settings settings = new AdamW.Settings(0.9f, 0.95f, 1e-6f, 0.1f);
        AdamW optimizer = new AdamW(List.of(parameter), settings);
        for (int t = 1; t <= 20; t++) {
            float lr = 1e-2f / t;
            float[] g = gaussian(random, n);
            System.arraycopy(g, 0, parameter.grad(), 0, n);
            optimizer.step(lr);
            double c1 = 1 - Math.pow(0.9f, t);
            double c2 = 1 - Math.pow(0.95f, t);
            for (int i = 0; i < n; i++) {
                p[i] *= 1 - (double) lr * 0.1f;
                m[i] = 0.9f * m[i] + (1 - 0.9f) * g[i];
                v[i] = 0.95f * v[i] + (1 - 0.95f) * g[i] * (double) g[i];
                p[i] -= lr / c1 * m[i] / (Math.sqrt(v[i]) / Math.sqrt(c2) + 1e-6f);
            }
        }
        for (int i = 0; i < n; i++) {
            assertEquals(p[i], parameter.value()[i], 1e-5, "p[" + i + "]");
        }
        assertEquals(20, optimizer.stepCount());
    }

    @Test
    void firstStepMovesEachWeightByTheLearningRateAgainstItsGradientSign() {
        // m̂ = g and v̂ = g² after one step, so the update is lr·g/|g| whatever the gradient's size
        Parameter parameter = new Parameter("p", new float[] {1f, 1f, 1f, 1f});
        float[] grad = {1e-3f, -5f, 200f, -0.5f};
        System.arraycopy(grad, 0, parameter.grad(), 0, grad.length);
        new AdamW(List.of(parameter), new AdamW.Settings(0.9f, 0.999f, 1e-12f, 0f)).step(0.01f);
        for (int i = 0; i < grad.length; i++) {
            assertEquals(1f - 0.01f * Math.signum(grad[i]), parameter.value()[i], 1e-6);
        }
    }

    @Test
    void weightDecayIsDecoupledFromTheGradient() {
        Parameter parameter = new Parameter("p", new float[] {2f});
        new AdamW(List.of(parameter), new AdamW.Settings(0.9f, 0.999f, 1e-8f, 0.5f)).step(0.1f);
        assertEquals(2f * (1 - 0.1f * 0.5f), parameter.value()[0], 1e-7, "zero gradient: only the decay applies");
    }

    @Test
    void restoredStateContinuesBitIdentically() {
        Random random = new Random(2);
        float[][] grads = new float[10][];
        for (int t = 0; t < grads.length; t++) {
            grads[t] = gaussian(random, 50);
        }
        float[] initial = gaussian(random, 50);
        Parameter straight = new Parameter("p", initial.clone());
        AdamW uninterrupted = new AdamW(List.of(straight), AdamW.Settings.defaults());
        for (float[] g : grads) {
            System.arraycopy(g, 0, straight.grad(), 0, g.length);
            uninterrupted.step(1e-3f);
        }

        Parameter first = new Parameter("p", initial.clone());
        AdamW before = new AdamW(List.of(first), AdamW.Settings.defaults());
        for (int t = 0; t < 5; t++) {
            System.arraycopy(grads[t], 0, first.grad(), 0, 50);
            before.step(1e-3f);
        }
        AdamW.State saved = before.state();
        Parameter resumed = new Parameter("p", first.value().clone());
        AdamW after = new AdamW(List.of(resumed), AdamW.Settings.defaults());
        after.restore(saved);
        for (int t = 5; t < 10; t++) {
            System.arraycopy(grads[t], 0, resumed.grad(), 0, 50);
            after.step(1e-3f);
        }
        assertArrayEquals(straight.value(), resumed.value());
        assertEquals(10, after.stepCount());
    }

    @Test
    void touchesOnlyTheParametersItWasGiven() {
        Parameter trainable = new Parameter("lora_A", new float[] {1f, 2f});
        Parameter frozen = new Parameter("W0", new float[] {3f, 4f});
        trainable.grad()[0] = 1f;
        frozen.grad()[0] = 1f;
        new AdamW(List.of(trainable), AdamW.Settings.defaults()).step(0.1f);
        assertArrayEquals(new float[] {3f, 4f}, frozen.value());
        assertTrue(trainable.value()[0] < 1f);
    }

    @Test
    void rejectsBadSettingsAndMismatchedState() {
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Settings(1f, 0.9f, 1e-8f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Settings(0.9f, 0.9f, 0f, 0f));
        AdamW optimizer = new AdamW(List.of(new Parameter("p", new float[3])), AdamW.Settings.defaults());
        assertThrows(IllegalArgumentException.class, () -> optimizer.step(Float.NaN));
        assertThrows(IllegalArgumentException.class,
                () -> optimizer.restore(new AdamW.State(1, List.of(new float[2]), List.of(new float[2]))));
    }

    @Test
    void clippingScalesToTheMaximumNormAndReportsTheOriginal() {
        Parameter a = new Parameter("a", new float[2]);
        Parameter b = new Parameter("b", new float[1]);
        a.grad()[0] = 3f;
        a.grad()[1] = 0f;
        b.grad()[0] = 4f;
        double norm = GradientClipping.clipByGlobalNorm(List.of(a, b), 1.0);
        assertEquals(5.0, norm, 1e-12);
        assertEquals(0.6f, a.grad()[0], 1e-6);
        assertEquals(0.8f, b.grad()[0], 1e-6);
        double again = GradientClipping.clipByGlobalNorm(List.of(a, b), 2.0);
        assertEquals(1.0, again, 1e-6);
        assertEquals(0.6f, a.grad()[0], 1e-6, "below the maximum nothing changes");
    }

    @Test
    void clippingRefusesNonFiniteGradientsNamingTheParameter() {
        Parameter ok = new Parameter("ok", new float[] {1f});
        Parameter bad = new Parameter("h.3.attn.c_attn.lora_B.weight", new float[1]);
        bad.grad()[0] = Float.POSITIVE_INFINITY;
        ArithmeticException error = assertThrows(ArithmeticException.class,
                () -> GradientClipping.clipByGlobalNorm(List.of(ok, bad), 1.0));
        assertTrue(error.getMessage().contains("h.3.attn.c_attn.lora_B.weight"), error.getMessage());
    }

    private static float[] gaussian(Random random, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    private static double[] toDouble(float[] values) {
        double[] result = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            result[i] = values[i];
        }
        return result;
    }
}
