package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.assertAllFinite;
import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.assertGradient;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.gaussianDoubles;
import static dev.loraflow.core.kernels.KernelChecks.maxAbs;
import static dev.loraflow.core.kernels.KernelChecks.numericGradient;
import static dev.loraflow.core.kernels.KernelChecks.weightedSum;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AttentionTest {

    /** Forward output of the double reference, for finite differences. */
    private static double[] referenceOut(double[] q, double[] k, double[] v, int b, int t, int h, int hkv, int d) {
        double[] out = new double[b * t * h * d];
        AttentionReference.forward(q, 0, k, 0, v, 0, out, 0, new double[b * h * t], 0, b, t, h, hkv, d);
        return out;
    }

    @ParameterizedTest(name = "B={0} T={1} H={2} Hkv={3} D={4}")
    @CsvSource({"2, 5, 4, 4, 4", "2, 5, 4, 2, 4", "2, 5, 4, 1, 6", "2, 5, 4, 2, 3", "1, 2, 2, 1, 5"})
    void referenceBackwardMatchesFiniteDifferences(int b, int t, int h, int hkv, int d) {
        Random random = new Random(31L * t + 7L * hkv + d);
        double[] q = gaussianDoubles(random, b * t * h * d, 0, 1);
        double[] k = gaussianDoubles(random, b * t * hkv * d, 0, 1);
        double[] v = gaussianDoubles(random, b * t * hkv * d, 0, 1);
        double[] g = gaussianDoubles(random, b * t * h * d, 0, 1);
        double[] out = new double[b * t * h * d];
        double[] lse = new double[b * h * t];
        AttentionReference.forward(q, 0, k, 0, v, 0, out, 0, lse, 0, b, t, h, hkv, d);
        double[] dq = filledWithNaN(q.length);
        double[] dk = filledWithNaN(k.length);
        double[] dv = filledWithNaN(v.length);
        AttentionReference.backward(g, 0, q, 0, k, 0, v, 0, lse, 0, dq, 0, dk, 0, dv, 0, b, t, h, hkv, d);

        assertGradient("dq", dq, numericGradient(q, () -> weightedSum(referenceOut(q, k, v, b, t, h, hkv, d), g)));
        assertGradient("dk", dk, numericGradient(k, () -> weightedSum(referenceOut(q, k, v, b, t, h, hkv, d), g)));
        assertGradient("dv", dv, numericGradient(v, () -> weightedSum(referenceOut(q, k, v, b, t, h, hkv, d), g)));
    }

    /** Outputs start as NaN so that an entry the kernel forgets to write fails the comparison. */
    private static double[] filledWithNaN(int n) {
        double[] values = new double[n];
        Arrays.fill(values, Double.NaN);
        return values;
    }

    private static float[] floatsFilledWithNaN(int n) {
        float[] values = new float[n];
        Arrays.fill(values, Float.NaN);
        return values;
    }

    /**
     * Float kernel against the double reference, tolerance {@link KernelChecks#FLOAT_RTOL} = 1e-5
     * relative to each output's own size ‖expected‖∞. GPT-2 (H=12, D=64), Llama-style GQA (H=8,
     * Hkv=2), T=1, a T=17 that leaves vector tails, and offsets into larger arrays.
     */
    @ParameterizedTest(name = "B={0} T={1} H={2} Hkv={3} D={4}")
    @CsvSource({"1, 1, 12, 12, 64", "2, 17, 12, 12, 64", "2, 17, 8, 2, 64", "1, 33, 4, 1, 17", "3, 5, 2, 2, 3",
            "2, 64, 8, 2, 64", "1, 130, 4, 2, 16"})
    void floatMatchesReference(int b, int t, int h, int hkv, int d) {
        Random random = new Random(17L * t + h + d);
        int offset = 3;
        int queryElements = b * t * h * d;
        int kvElements = b * t * hkv * d;
        float[] q = gaussian(random, offset + queryElements, 0, 1);
        float[] k = gaussian(random, offset + kvElements, 0, 1);
        float[] v = gaussian(random, offset + kvElements, 0, 1);
        float[] dout = gaussian(random, offset + queryElements, 0, 1);
        float[] out = floatsFilledWithNaN(offset + queryElements);
        float[] lse = floatsFilledWithNaN(offset + b * h * t);
        Attention.forward(q, offset, k, offset, v, offset, out, offset, lse, offset, b, t, h, hkv, d);
        float[] dq = floatsFilledWithNaN(offset + queryElements);
        float[] dk = floatsFilledWithNaN(offset + kvElements);
        float[] dv = floatsFilledWithNaN(offset + kvElements);
        Attention.backward(dout, offset, q, offset, k, offset, v, offset, lse, offset,
                dq, offset, dk, offset, dv, offset, b, t, h, hkv, d);

        double[] expectedOut = new double[queryElements];
        double[] expectedLse = new double[b * h * t];
        double[] qd = tail(widen(q), offset);
        double[] kd = tail(widen(k), offset);
        double[] vd = tail(widen(v), offset);
        AttentionReference.forward(qd, 0, kd, 0, vd, 0, expectedOut, 0, expectedLse, 0, b, t, h, hkv, d);
        double[] expectedDq = new double[queryElements];
        double[] expectedDk = new double[kvElements];
        double[] expectedDv = new double[kvElements];
        AttentionReference.backward(tail(widen(dout), offset), 0, qd, 0, kd, 0, vd, 0, expectedLse, 0,
                expectedDq, 0, expectedDk, 0, expectedDv, 0, b, t, h, hkv, d);

        assertCloseToReference("out", expectedOut, tail(out, offset));
        assertCloseToReference("logSumExp", expectedLse, tail(lse, offset));
        assertCloseToReference("dq", expectedDq, tail(dq, offset));
        assertCloseToReference("dk", expectedDk, tail(dk, offset));
        assertCloseToReference("dv", expectedDv, tail(dv, offset));
        assertTrue(Float.isNaN(out[offset - 1]) && Float.isNaN(dq[offset - 1]), "wrote before the offset");
    }

    /** Enough (batch, head) pairs, and long enough sequences, that the work is split over the cores. */
    @Test
    void parallelSplitMatchesReference() {
        int b = 2;
        int t = 128;
        int h = 8;
        int hkv = 2;
        int d = 64;
        Random random = new Random(5);
        float[] q = gaussian(random, b * t * h * d, 0, 1);
        float[] k = gaussian(random, b * t * hkv * d, 0, 1);
        float[] v = gaussian(random, b * t * hkv * d, 0, 1);
        float[] dout = gaussian(random, b * t * h * d, 0, 1);
        float[] out = new float[q.length];
        float[] lse = new float[b * h * t];
        Attention.forward(q, 0, k, 0, v, 0, out, 0, lse, 0, b, t, h, hkv, d);
        float[] dq = new float[q.length];
        float[] dk = new float[k.length];
        float[] dv = new float[v.length];
        Attention.backward(dout, 0, q, 0, k, 0, v, 0, lse, 0, dq, 0, dk, 0, dv, 0, b, t, h, hkv, d);
        assertAllFinite("dq", dq);

        double[] expectedOut = new double[q.length];
        double[] expectedLse = new double[lse.length];
        AttentionReference.forward(widen(q), 0, widen(k), 0, widen(v), 0, expectedOut, 0, expectedLse, 0, b, t, h, hkv, d);
        double[] expectedDq = new double[q.length];
        double[] expectedDk = new double[k.length];
        double[] expectedDv = new double[v.length];
        AttentionReference.backward(widen(dout), 0, widen(q), 0, widen(k), 0, widen(v), 0, expectedLse, 0,
                expectedDq, 0, expectedDk, 0, expectedDv, 0, b, t, h, hkv, d);
        assertCloseToReference("out", expectedOut, out);
        assertCloseToReference("dq", expectedDq, dq);
        assertCloseToReference("dk", expectedDk, dk);
        assertCloseToReference("dv", expectedDv, dv);
    }

    @Test
    void laterKeysAndValuesDoNotChangeEarlierOutputs() {
        int b = 2;
        int t = 9;
        int h = 4;
        int hkv = 2;
        int d = 8;
        int changedFrom = 5;
        Random random = new Random(9);
        float[] q = gaussian(random, b * t * h * d, 0, 1);
        float[] k = gaussian(random, b * t * hkv * d, 0, 1);
        float[] v = gaussian(random, b * t * hkv * d, 0, 1);
        float[] out = new float[q.length];
        Attention.forward(q, 0, k, 0, v, 0, out, 0, new float[b * h * t], 0, b, t, h, hkv, d);

        float[] changedK = k.clone();
        float[] changedV = v.clone();
        for (int batch = 0; batch < b; batch++) {
            for (int i = (batch * t + changedFrom) * hkv * d; i < (batch + 1) * t * hkv * d; i++) {
                changedK[i] += 10f;
                changedV[i] -= 7f;
            }
        }
        float[] changedOut = new float[q.length];
        Attention.forward(q, 0, changedK, 0, changedV, 0, changedOut, 0, new float[b * h * t], 0, b, t, h, hkv, d);
        for (int batch = 0; batch < b; batch++) {
            int from = batch * t * h * d;
            int to = from + changedFrom * h * d;
            assertArrayEquals(Arrays.copyOfRange(out, from, to), Arrays.copyOfRange(changedOut, from, to),
                    "positions before " + changedFrom + " of batch " + batch);
            assertTrue(maxAbs(widen(Arrays.copyOfRange(out, to, (batch + 1) * t * h * d)))
                    != maxAbs(widen(Arrays.copyOfRange(changedOut, to, (batch + 1) * t * h * d))),
                    "the change must reach the later positions, or the check proves nothing");
        }
    }

    @Test
    void rejectsBadArguments() {
        float[] big = new float[1024];
        IllegalArgumentException groups = assertThrows(IllegalArgumentException.class,
                () -> Attention.forward(big, 0, big, 0, big, 0, big, 0, big, 0, 1, 2, 4, 3, 4));
        assertTrue(groups.getMessage().contains("not divisible"), groups.getMessage());
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class,
                () -> Attention.forward(big, 0, new float[7], 0, big, 0, big, 0, big, 0, 1, 2, 2, 1, 4));
        assertTrue(small.getMessage().startsWith("k:"), small.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> Attention.forward(big, 1020, big, 0, big, 0, big, 0, big, 0, 1, 2, 2, 1, 4));
        assertThrows(IllegalArgumentException.class,
                () -> Attention.forward(big, 0, big, 0, big, 0, big, 0, big, 0, 1, 2, 2, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> Attention.backward(big, 0, big, 0, big, 0, big, 0,
                new float[3], 0, big, 0, big, 0, big, 0, 1, 2, 2, 1, 4));
        double[] bigDoubles = new double[1024];
        assertThrows(IllegalArgumentException.class, () -> AttentionReference.forward(bigDoubles, 0, bigDoubles, 0,
                bigDoubles, 0, bigDoubles, 0, bigDoubles, 0, 1, 2, 4, 3, 4));
    }

    private static double[] tail(double[] values, int from) {
        return Arrays.copyOfRange(values, from, values.length);
    }

    private static float[] tail(float[] values, int from) {
        return Arrays.copyOfRange(values, from, values.length);
    }
}
