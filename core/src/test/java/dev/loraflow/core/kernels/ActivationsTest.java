package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.SIZES;
import static dev.loraflow.core.kernels.KernelChecks.assertAllFinite;
import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.assertGradient;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.gaussianDoubles;
import static dev.loraflow.core.kernels.KernelChecks.numericGradient;
import static dev.loraflow.core.kernels.KernelChecks.weightedSum;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Random;
import java.util.function.DoubleSupplier;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class ActivationsTest {

    /** Inputs far into both saturated tails, where 1 + tanh(z) and σ lose their digits first. */
    private static final float[] EXTREMES = {-1e4f, -100f, -30f, -9f, -5f, -3f, -1e-30f, -0f, 0f, 1e-30f, 3f, 5f, 9f,
            30f, 100f, 1e4f};

    /**
     * Elementwise outputs are compared relatively, |a − e| ≤ 1e-5·(|e| + 1e-9), not against the
     * largest output: one input of 1e4 would otherwise excuse every small one. The 1e-14 absolute
     * floor covers the reference's own error, since its literal 1 + tanh(z) cancels for x ≲ −5
     * (at x = −6 the double tanh form is off by 3e-7 relative; the kernel's σ(2z) form is not).
     */
    private static final double ABSOLUTE_SCALE = 1e-9;

    /** The row sizes plus one large enough to be split over the cores. */
    static IntStream sizes() {
        return IntStream.concat(Arrays.stream(SIZES), IntStream.of(2 * VectorMath.PARALLEL_MIN_ELEMENTS + 5));
    }

    @Test
    void referenceBackwardsMatchFiniteDifferences() {
        Random random = new Random(1);
        int n = 23;
        double[] x = gaussianDoubles(random, n, 0, 2);
        double[] up = gaussianDoubles(random, n, 0, 2);
        double[] g = gaussianDoubles(random, n, 0, 1);

        double[] dx = new double[n];
        ActivationsReference.geluBackward(g, 0, x, 0, dx, 0, n);
        assertGradient("gelu dx", dx, numericGradient(x, () -> {
            double[] y = new double[n];
            ActivationsReference.geluForward(x, 0, y, 0, n);
            return weightedSum(y, g);
        }));

        ActivationsReference.siluBackward(g, 0, x, 0, dx, 0, n);
        assertGradient("silu dx", dx, numericGradient(x, () -> {
            double[] y = new double[n];
            ActivationsReference.siluForward(x, 0, y, 0, n);
            return weightedSum(y, g);
        }));

        double[] dGate = new double[n];
        double[] dUp = new double[n];
        ActivationsReference.swigluBackward(g, 0, x, 0, up, 0, dGate, 0, dUp, 0, n);
        DoubleSupplier swiglu = () -> {
            double[] out = new double[n];
            ActivationsReference.swigluForward(x, 0, up, 0, out, 0, n);
            return weightedSum(out, g);
        };
        assertGradient("swiglu dGate", dGate, numericGradient(x, swiglu));
        assertGradient("swiglu dUp", dUp, numericGradient(up, swiglu));
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void geluAndSiluMatchReference(int n) {
        Random random = new Random(n);
        float[] x = inputs(random, n);
        float[] dy = gaussian(random, n, 0, 1);
        double[] xRef = widen(x);
        double[] dyRef = widen(dy);
        float[] out = new float[n];
        double[] outRef = new double[n];

        Activations.geluForward(x, 0, out, 0, n);
        ActivationsReference.geluForward(xRef, 0, outRef, 0, n);
        assertCloseToReference("gelu y", outRef, out, ABSOLUTE_SCALE);
        Activations.geluBackward(dy, 0, x, 0, out, 0, n);
        ActivationsReference.geluBackward(dyRef, 0, xRef, 0, outRef, 0, n);
        assertCloseToReference("gelu dx", outRef, out, derivativeScale(dy));

        Activations.siluForward(x, 0, out, 0, n);
        ActivationsReference.siluForward(xRef, 0, outRef, 0, n);
        assertCloseToReference("silu y", outRef, out, ABSOLUTE_SCALE);
        Activations.siluBackward(dy, 0, x, 0, out, 0, n);
        ActivationsReference.siluBackward(dyRef, 0, xRef, 0, outRef, 0, n);
        assertCloseToReference("silu dx", outRef, out, derivativeScale(dy));
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void swigluMatchesReference(int n) {
        Random random = new Random(n + 1);
        float[] gate = inputs(random, n);
        float[] up = gaussian(random, n, 0, 2);
        float[] dOut = gaussian(random, n, 0, 1);
        double[] gateRef = widen(gate);
        double[] upRef = widen(up);

        float[] out = new float[n];
        double[] outRef = new double[n];
        Activations.swigluForward(gate, 0, up, 0, out, 0, n);
        ActivationsReference.swigluForward(gateRef, 0, upRef, 0, outRef, 0, n);
        assertCloseToReference("swiglu out", outRef, out, ABSOLUTE_SCALE);

        float[] dGate = new float[n];
        float[] dUp = new float[n];
        double[] dGateRef = new double[n];
        double[] dUpRef = new double[n];
        Activations.swigluBackward(dOut, 0, gate, 0, up, 0, dGate, 0, dUp, 0, n);
        ActivationsReference.swigluBackward(widen(dOut), 0, gateRef, 0, upRef, 0, dGateRef, 0, dUpRef, 0, n);
        float[] dOutUp = new float[n];
        VectorMath.mul(dOut, 0, up, 0, dOutUp, 0, n);
        double[] dGateScale = derivativeScale(dOutUp);
        assertCloseToReference("swiglu dGate", dGateRef, dGate, dGateScale);
        assertCloseToReference("swiglu dUp", dUpRef, dUp, ABSOLUTE_SCALE);

        // In place over the inputs, as a memory-tight MLP backward would call it: the same bits as the
        // call above.
        Activations.swigluBackward(dOut, 0, gate, 0, up, 0, gate, 0, up, 0, n);
        assertArrayEquals(dGate, gate, "swiglu dGate in place");
        assertArrayEquals(dUp, up, "swiglu dUp in place");
    }

    @Test
    void saturatedInputsStayFiniteAndExact() {
        int n = EXTREMES.length;
        float[] ones = new float[n];
        Arrays.fill(ones, 1f);
        float[] out = new float[n];

        Activations.geluForward(EXTREMES, 0, out, 0, n);
        assertAllFinite("gelu y", out);
        assertEquals(1e4f, out[n - 1]);
        assertEquals(0f, out[0], 0f);
        Activations.geluBackward(ones, 0, EXTREMES, 0, out, 0, n);
        assertAllFinite("gelu dx", out);
        assertEquals(1f, out[n - 1]);
        assertEquals(0f, out[0], 0f);
        assertEquals(0.5f, out[8]);

        Activations.siluForward(EXTREMES, 0, out, 0, n);
        assertAllFinite("silu y", out);
        assertEquals(1e4f, out[n - 1]);
        assertEquals(0f, out[0], 0f);
        Activations.siluBackward(ones, 0, EXTREMES, 0, out, 0, n);
        assertAllFinite("silu dx", out);
        assertEquals(1f, out[n - 1]);
        assertEquals(0f, out[0], 0f);
    }

    /**
     * Per-element scale of a backward output dy·f′(x): f′ is a sum of O(1) terms (σ and x·σ·(1 − σ)
     * and the like) that cancel where f′ crosses zero (x ≈ −0.75 for GELU, ≈ −1.28 for SiLU), so the
     * rounding is relative to |dy|, not to the result.
     */
    private static double[] derivativeScale(float[] dy) {
        double[] scale = new double[dy.length];
        for (int i = 0; i < dy.length; i++) {
            scale[i] = Math.abs(dy[i]) + ABSOLUTE_SCALE;
        }
        return scale;
    }

    /** Gaussian inputs with the saturated extremes scattered through, so they also land in vector tails. */
    private static float[] inputs(Random random, int n) {
        float[] x = gaussian(random, n, 0, 3);
        for (int i = 0; i < n; i += 7) {
            x[i] = EXTREMES[(i / 7) % EXTREMES.length];
        }
        return x;
    }
}
