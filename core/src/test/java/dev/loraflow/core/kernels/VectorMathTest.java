package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.SIZES;
import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class VectorMathTest {

    /** Offsets into the arrays, so that no kernel gets away with ignoring them. */
    private static final int A_OFF = 3;
    private static final int B_OFF = 5;
    private static final int OUT_OFF = 7;
    private static final int PAD = 8;

    /** The row sizes plus one large enough to be split over the cores. */
    static IntStream sizes() {
        return IntStream.concat(Arrays.stream(SIZES), IntStream.of(2 * VectorMath.PARALLEL_MIN_ELEMENTS + 5));
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void elementwiseOpsMatchReference(int n) {
        Random random = new Random(n);
        float[] a = gaussian(random, n + PAD, 0, 1);
        float[] b = gaussian(random, n + PAD, 0, 1);
        double[] aRef = widen(a);
        double[] bRef = widen(b);

        float[] out = new float[n + PAD];
        double[] outRef = new double[n + PAD];
        VectorMath.add(a, A_OFF, b, B_OFF, out, OUT_OFF, n);
        VectorMathReference.add(aRef, A_OFF, bRef, B_OFF, outRef, OUT_OFF, n);
        assertCloseToReference("add", outRef, out);

        VectorMath.mul(a, A_OFF, b, B_OFF, out, OUT_OFF, n);
        VectorMathReference.mul(aRef, A_OFF, bRef, B_OFF, outRef, OUT_OFF, n);
        assertCloseToReference("mul", outRef, out);

        float[] y = b.clone();
        double[] yRef = bRef.clone();
        VectorMath.addInPlace(a, A_OFF, y, B_OFF, n);
        VectorMathReference.addInPlace(aRef, A_OFF, yRef, B_OFF, n);
        assertCloseToReference("addInPlace", yRef, y);

        VectorMath.axpy(-0.37f, a, A_OFF, y, B_OFF, n);
        VectorMathReference.axpy(-0.37f, aRef, A_OFF, yRef, B_OFF, n);
        assertCloseToReference("axpy", yRef, y);

        VectorMath.scale(1.7f, y, B_OFF, n);
        VectorMathReference.scale(1.7f, yRef, B_OFF, n);
        assertCloseToReference("scale", yRef, y);

        VectorMath.fill(y, B_OFF, n, 2.5f);
        VectorMathReference.fill(yRef, B_OFF, n, 2.5);
        assertCloseToReference("fill", yRef, y);

        VectorMath.zero(y, B_OFF, n);
        VectorMathReference.zero(yRef, B_OFF, n);
        assertCloseToReference("zero", yRef, y);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void reductionsMatchReference(int n) {
        Random random = new Random(n);
        float[] a = gaussian(random, n + PAD, 0.5, 1);
        float[] b = gaussian(random, n + PAD, -0.25, 1);
        double[] aRef = widen(a);
        double[] bRef = widen(b);

        // Sums of mixed signs cancel: measure their error against Σ|terms|, as any float summation must.
        double absSum = VectorMathReference.dot(aRef, A_OFF, signs(aRef), A_OFF, n);
        double absDot = 0;
        for (int i = 0; i < n; i++) {
            absDot += Math.abs(aRef[A_OFF + i] * bRef[B_OFF + i]);
        }
        assertEquals(VectorMathReference.sum(aRef, A_OFF, n), VectorMath.sum(a, A_OFF, n), 1e-6 * absSum, "sum");
        assertEquals(VectorMathReference.dot(aRef, A_OFF, bRef, B_OFF, n), VectorMath.dot(a, A_OFF, b, B_OFF, n),
                1e-6 * absDot, "dot");
        double sumOfSquares = VectorMathReference.sumOfSquares(aRef, A_OFF, n);
        assertEquals(sumOfSquares, VectorMath.sumOfSquares(a, A_OFF, n), 1e-7 * sumOfSquares, "sumOfSquares");
        assertEquals(VectorMathReference.max(aRef, A_OFF, n), VectorMath.max(a, A_OFF, n), "max");
    }

    @Test
    void sumOfSquaresStaysExactWhereAFloatRunningSumStalls() {
        // A float running sum of ones stops at 2^24; the blocked sum must count every element.
        int n = (1 << 24) + 1001;
        float[] ones = new float[n];
        Arrays.fill(ones, 1f);
        assertEquals(n, VectorMath.sumOfSquares(ones, 0, n));
        assertEquals(n, VectorMath.sum(ones, 0, n));
    }

    @Test
    void sumOfSquaresOfMillionsIsAccurate() {
        int n = 3_000_017;
        float[] x = gaussian(new Random(7), n, 0, 1e-3);
        double exact = VectorMathReference.sumOfSquares(widen(x), 0, n);
        assertEquals(exact, VectorMath.sumOfSquares(x, 0, n), 1e-7 * exact, "split over the cores");
        assertEquals(exact, VectorMath.sumOfSquaresRange(x, 0, n), 1e-7 * exact, "single-threaded");
        assertEquals(VectorMath.sumOfSquaresRange(x, 0, n), VectorMath.sumOfSquares(x, 0, n), "the thread count changes nothing");
    }

    @Test
    void expIsWithinOneUlpOfMathExpWhereTheResultIsANormalFloat() {
        // Every 257th float from −110 to +100, both signs: arguments down to the smallest subnormal,
        // results from the smallest normal float to overflow, and the flushed and infinite ends.
        int positives = Float.floatToIntBits(100f) / 257;
        int negatives = Float.floatToIntBits(110f) / 257;
        float[] x = new float[positives + negatives];
        for (int i = 0; i < positives; i++) {
            x[i] = Float.intBitsToFloat(257 * i);
        }
        for (int i = 0; i < negatives; i++) {
            x[positives + i] = -Float.intBitsToFloat(257 * i + 1);
        }
        float[] y = exp(x);
        int worst = 0;
        float worstInput = Float.NaN;
        for (int i = 0; i < x.length; i++) {
            float expected = (float) Math.exp(x[i]);
            if (expected < Float.MIN_NORMAL) {
                assertEquals(0f, y[i], 0f, "exp(" + x[i] + ") flushes to 0");
                continue;
            }
            int ulps = Math.abs(Float.floatToIntBits(y[i]) - Float.floatToIntBits(expected));
            if (ulps > worst) {
                worst = ulps;
                worstInput = x[i];
            }
        }
        assertTrue(worst <= 1, "exp is " + worst + " ulp off at " + worstInput);
    }

    @Test
    void expAtTheEndsOfItsRange() {
        float largestFinite = Math.nextDown((float) Math.log(Float.MAX_VALUE));
        float smallestNormal = -87.33654f; // the float just above ln(2⁻¹²⁶) = −87.3365447…
        float[] x = {Float.NEGATIVE_INFINITY, -1e30f, -103.2f, Math.nextDown(smallestNormal), smallestNormal, -0f, 0f,
                Float.MIN_VALUE, largestFinite, Math.nextUp(largestFinite), 1e30f, Float.POSITIVE_INFINITY,
                Float.NaN, Float.intBitsToFloat(0x7fc001ff)};
        float[] y = exp(x);
        assertEquals(0f, y[0], 0f, "exp(−∞) is exactly 0, so masked softmax entries add nothing");
        assertEquals(0f, y[1], 0f);
        assertEquals(0f, y[2], 0f, "subnormal results flush to 0");
        assertEquals(0f, y[3], 0f);
        assertTrue((float) Math.exp(smallestNormal) >= Float.MIN_NORMAL);
        assertEquals((float) Math.exp(smallestNormal), y[4], Math.ulp(Float.MIN_NORMAL));
        assertEquals(1f, y[5], 0f);
        assertEquals(1f, y[6], 0f);
        assertEquals(1f, y[7], 0f);
        assertTrue(Float.isFinite((float) Math.exp(largestFinite)));
        assertEquals((float) Math.exp(largestFinite), y[8], Math.ulp(Float.MAX_VALUE));
        assertEquals(Float.POSITIVE_INFINITY, y[9]);
        assertEquals(Float.POSITIVE_INFINITY, y[10]);
        assertEquals(Float.POSITIVE_INFINITY, y[11]);
        assertTrue(Float.isNaN(y[12]));
        assertTrue(Float.isNaN(y[13]), "a NaN payload must not leak into the exponent");
    }

    @Test
    void laneSumsAndMaximaTreatEveryLane() {
        float[] x = new float[VectorMath.LANES];
        for (int i = 0; i < x.length; i++) {
            x[i] = i + 1;
        }
        FloatVector v = FloatVector.fromArray(VectorMath.SPECIES, x, 0);
        assertEquals(x.length * (x.length + 1) / 2f, VectorMath.sumLanes(v));
        assertEquals(x.length, VectorMath.maxLanes(v));
        x[x.length / 2 + 1] = Float.NaN;
        assertTrue(Float.isNaN(VectorMath.maxLanes(FloatVector.fromArray(VectorMath.SPECIES, x, 0))));
        Arrays.fill(x, -0f);
        x[x.length - 1] = 0f;
        assertEquals(0f, VectorMath.maxLanes(FloatVector.fromArray(VectorMath.SPECIES, x, 0)), 0f, "+0 above −0, as Math.max");
        assertEquals(Float.floatToIntBits(0f), Float.floatToIntBits(VectorMath.maxLanes(FloatVector.fromArray(VectorMath.SPECIES, x, 0))));
    }

    /** {@link VectorMath#exp} over an array, the last partial vector padded with zeros. */
    private static float[] exp(float[] x) {
        int lanes = VectorMath.LANES;
        float[] padded = Arrays.copyOf(x, (x.length + lanes - 1) / lanes * lanes);
        float[] y = new float[padded.length];
        for (int i = 0; i < padded.length; i += lanes) {
            VectorMath.exp(FloatVector.fromArray(VectorMath.SPECIES, padded, i)).intoArray(y, i);
        }
        return Arrays.copyOf(y, x.length);
    }

    @Test
    void emptyInputs() {
        float[] empty = new float[0];
        assertEquals(0.0, VectorMath.sum(empty, 0, 0));
        assertEquals(0.0, VectorMath.sumOfSquares(empty, 0, 0));
        assertEquals(Float.NEGATIVE_INFINITY, VectorMath.max(empty, 0, 0));
        VectorMath.add(empty, 0, empty, 0, empty, 0, 0);
    }

    @Test
    void rangesOutsideTheArrayFailBeforeWriting() {
        float[] small = new float[10];
        float[] out = new float[10];
        Arrays.fill(out, 42f);
        assertThrows(IllegalArgumentException.class, () -> VectorMath.add(small, 0, small, 0, out, 5, 6));
        assertThrows(IllegalArgumentException.class, () -> VectorMath.axpy(1f, small, -1, out, 0, 4));
        for (float v : out) {
            assertEquals(42f, v);
        }
    }

    private static double[] signs(double[] values) {
        double[] signs = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            signs[i] = Math.signum(values[i]);
        }
        return signs;
    }
}
