package dev.loraflow.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;
import java.util.function.DoubleSupplier;

/**
 * Shared test machinery: random inputs, float-versus-double comparison, and central finite
 * differences for checking the double references' backward passes.
 */
final class KernelChecks {

    /** Row lengths that fill no, one, or several vector lanes, with every kind of tail. */
    static final int[] SIZES = {1, 3, 15, 17, 31, 33, 768, 769, 3077};

    /**
     * Float kernels against the double reference: |actual − expected| ≤ FLOAT_RTOL·(|expected| + scale).
     * scale, the "absolute 1e-5, scaled" part, is the size of the terms an output is computed from:
     * ‖expected‖∞ by default, and the input-side size where an output is a difference of nearly equal
     * terms (dx of softmax and of the norms, activation derivatives near their zeros), since float
     * rounding is relative to the terms, not to what is left after they cancel.
     */
    static final double FLOAT_RTOL = 1e-5;

    /** Step of the central differences; with O(1) inputs the truncation error is ~h² and the rounding ~1e-16/h. */
    static final double FD_STEP = 1e-5;
    /**
     * Finite differences against the analytic double gradient: |numeric − analytic| ≤
     * FD_RTOL·(|analytic| + 1e-3·‖analytic‖∞); the floor keeps entries that are exactly or nearly
     * zero from demanding a relative accuracy no difference quotient has.
     */
    static final double FD_RTOL = 1e-6;

    private KernelChecks() {}

    static float[] gaussian(Random random, int n, double mean, double std) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (mean + std * random.nextGaussian());
        }
        return values;
    }

    static double[] gaussianDoubles(Random random, int n, double mean, double std) {
        double[] values = new double[n];
        for (int i = 0; i < n; i++) {
            values[i] = mean + std * random.nextGaussian();
        }
        return values;
    }

    /** The exact double value of each float, so the reference sees the very inputs the kernel saw. */
    static double[] widen(float[] values) {
        double[] wide = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            wide[i] = values[i];
        }
        return wide;
    }

    static double maxAbs(double[] values) {
        double max = 0;
        for (double v : values) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }

    /** Compares with the output's own size, ‖expected‖∞, as the scale. */
    static void assertCloseToReference(String what, double[] expected, float[] actual) {
        assertCloseToReference(what, expected, actual, maxAbs(expected));
    }

    /**
     * |actual − expected| ≤ FLOAT_RTOL·(|expected| + scale) elementwise, where scale is the size of
     * the terms the output is computed from.
     */
    static void assertCloseToReference(String what, double[] expected, float[] actual, double scale) {
        double[] scales = new double[expected.length];
        Arrays.fill(scales, scale);
        assertCloseToReference(what, expected, actual, scales);
    }

    /** As above with a scale per element, for outputs whose terms differ in size element by element. */
    static void assertCloseToReference(String what, double[] expected, float[] actual, double[] scales) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double tolerance = FLOAT_RTOL * (Math.abs(expected[i]) + scales[i]);
            if (!(Math.abs(actual[i] - expected[i]) <= tolerance)) {
                fail(what + "[" + i + "]: expected " + expected[i] + " but was " + actual[i] + " (tolerance " + tolerance + ")");
            }
        }
    }

    static void assertCloseToReference(String what, double expected, double actual) {
        double tolerance = FLOAT_RTOL * Math.abs(expected) + 1e-12;
        assertTrue(Math.abs(actual - expected) <= tolerance,
                what + ": expected " + expected + " but was " + actual + " (tolerance " + tolerance + ")");
    }

    /** ∂loss/∂input by central differences, perturbing each element of input in place and restoring it. */
    static double[] numericGradient(double[] input, DoubleSupplier loss) {
        double[] gradient = new double[input.length];
        for (int i = 0; i < input.length; i++) {
            double saved = input[i];
            input[i] = saved + FD_STEP;
            double plus = loss.getAsDouble();
            input[i] = saved - FD_STEP;
            double minus = loss.getAsDouble();
            input[i] = saved;
            gradient[i] = (plus - minus) / (2 * FD_STEP);
        }
        return gradient;
    }

    static void assertGradient(String what, double[] analytic, double[] numeric) {
        double floor = 1e-3 * maxAbs(analytic);
        assertTrue(maxAbs(analytic) > 0, what + ": gradient is identically zero, the check would prove nothing");
        for (int i = 0; i < analytic.length; i++) {
            double tolerance = FD_RTOL * (Math.abs(analytic[i]) + floor);
            if (!(Math.abs(numeric[i] - analytic[i]) <= tolerance)) {
                fail(what + "[" + i + "]: analytic " + analytic[i] + " but finite difference " + numeric[i]
                        + " (tolerance " + tolerance + ")");
            }
        }
    }

    /** Σ y ⊙ g: a scalar loss whose gradient with respect to y is g. */
    static double weightedSum(double[] y, double[] g) {
        return VectorMathReference.dot(y, 0, g, 0, y.length);
    }

    static void assertAllFinite(String what, float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                fail(what + "[" + i + "] is " + values[i]);
            }
        }
    }
}
