package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CachedAttentionTest {

    /** Queries, keys and values of one sequence in a projection's layout, and the cache they fill. */
    private record Case(int past, int count, int heads, int kvHeads, int headDim, int capacity,
                        float[] q, float[] k, float[] v, float[] keys, float[] values) {

        static Case random(int past, int count, int heads, int kvHeads, int headDim, int capacity, long seed) {
            Random random = new Random(seed);
            int positions = past + count;
            float[] q = gaussian(random, count * heads * headDim, 0, 1);
            float[] k = gaussian(random, positions * kvHeads * headDim, 0, 1);
            float[] v = gaussian(random, positions * kvHeads * headDim, 0, 1);
            float[] keys = new float[capacity * kvHeads * headDim];
            float[] values = new float[keys.length];
            Arrays.fill(keys, Float.NaN);
            Arrays.fill(values, Float.NaN);
            int width = kvHeads * headDim;
            // The past and the new tokens in two appends, as a prefill and a decode step would.
            CachedAttention.append(k, 0, v, 0, width, past, keys, values, capacity, 0, kvHeads, headDim);
            CachedAttention.append(k, past * width, v, past * width, width, count, keys, values, capacity, past,
                    kvHeads, headDim);
            return new Case(past, count, heads, kvHeads, headDim, capacity, q, k, v, keys, values);
        }

        float[] forward(int first, int rows) {
            int width = heads * headDim;
            float[] out = new float[rows * width];
            CachedAttention.forward(q, first * width, width, rows, keys, values, capacity, past + first, out, 0,
                    heads, kvHeads, headDim, new float[CachedAttention.scratchLength(heads, capacity)]);
            return out;
        }
    }

    /**
     * Against the double reference, tolerance {@link KernelChecks#FLOAT_RTOL} relative to ‖expected‖∞:
     * n = 1 and n > 1, with and without a past, GQA, odd head dimensions, more keys than four vectors
     * hold, and unused capacity beyond the filled positions (NaN there must not leak in).
     */
    @ParameterizedTest(name = "past={0} n={1} H={2} Hkv={3} D={4} capacity={5}")
    @CsvSource({"0, 1, 4, 4, 5, 8", "0, 7, 4, 2, 3, 9", "9, 1, 8, 2, 17, 40", "13, 6, 6, 3, 7, 19",
            "37, 40, 4, 1, 64, 100", "0, 1, 2, 1, 1, 1", "70, 1, 12, 12, 64, 71"})
    void floatMatchesReference(int past, int count, int heads, int kvHeads, int headDim, int capacity) {
        Case c = Case.random(past, count, heads, kvHeads, headDim, capacity, 31L * past + count + headDim);
        float[] out = c.forward(0, count);
        double[] expected = CachedAttentionReference.forward(widen(c.q()), widen(c.k()), widen(c.v()), past, count,
                heads, kvHeads, headDim);
        assertCloseToReference("out", expected, out);
    }

    /** The reference's new rows are the last rows of causal self-attention over the whole sequence. */
    @ParameterizedTest(name = "past={0} n={1} H={2} Hkv={3} D={4}")
    @CsvSource({"0, 5, 4, 2, 3", "6, 1, 4, 1, 5", "4, 3, 6, 3, 8"})
    void referenceAgreesWithFullCausalAttention(int past, int count, int heads, int kvHeads, int headDim) {
        Random random = new Random(7L * past + count);
        int positions = past + count;
        double[] q = KernelChecks.gaussianDoubles(random, positions * heads * headDim, 0, 1);
        double[] k = KernelChecks.gaussianDoubles(random, positions * kvHeads * headDim, 0, 1);
        double[] v = KernelChecks.gaussianDoubles(random, positions * kvHeads * headDim, 0, 1);
        double[] full = new double[q.length];
        AttentionReference.forward(q, 0, k, 0, v, 0, full, 0, new double[heads * positions], 0, 1, positions, heads,
                kvHeads, headDim);
        int newRows = past * heads * headDim;
        double[] cached = CachedAttentionReference.forward(Arrays.copyOfRange(q, newRows, q.length), k, v, past, count,
                heads, kvHeads, headDim);
        double[] expected = Arrays.copyOfRange(full, newRows, full.length);
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Math.abs(expected[i] - cached[i]) <= 1e-12 * (1 + Math.abs(expected[i])), "out[" + i + "]");
        }
    }

    /** Each row's sums run in a fixed order, so splitting the new rows into chunks changes no bit. */
    @Test
    void rowsGiveTheSameBitsAloneAsInAChunk() {
        Case c = Case.random(5, 9, 8, 2, 12, 20, 3);
        float[] together = c.forward(0, 9);
        int width = 8 * 12;
        for (int row = 0; row < 9; row++) {
            assertArrayEquals(Arrays.copyOfRange(together, row * width, (row + 1) * width), c.forward(row, 1),
                    "row " + row);
        }
    }

    /** A query row read from inside a wider row, as from GPT-2's fused [q | k | v] projection. */
    @Test
    void readsStridedRows() {
        int heads = 3;
        int headDim = 5;
        int width = heads * headDim;
        int stride = 3 * width;
        Case c = Case.random(2, 4, heads, heads, headDim, 8, 11);
        float[] fused = new float[4 * stride];
        Arrays.fill(fused, Float.NaN);
        for (int row = 0; row < 4; row++) {
            System.arraycopy(c.q(), row * width, fused, row * stride + width, width);
        }
        float[] out = new float[4 * width];
        CachedAttention.forward(fused, width, stride, 4, c.keys(), c.values(), 8, 2, out, 0, heads, heads, headDim,
                new float[CachedAttention.scratchLength(heads, 8)]);
        assertArrayEquals(c.forward(0, 4), out);
    }

    @Test
    void rejectsBadArguments() {
        float[] keys = new float[4 * 2 * 3];
        float[] values = new float[keys.length];
        float[] q = new float[64];
        float[] out = new float[64];
        float[] scratch = new float[CachedAttention.scratchLength(4, 4)];
        IllegalArgumentException full = assertThrows(IllegalArgumentException.class,
                () -> CachedAttention.forward(q, 0, 12, 2, keys, values, 4, 3, out, 0, 4, 2, 3, scratch));
        assertTrue(full.getMessage().contains("capacity 4"), full.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> CachedAttention.append(q, 0, q, 0, 6, 2, keys, values, 4, 3, 2, 3));
        IllegalArgumentException groups = assertThrows(IllegalArgumentException.class,
                () -> CachedAttention.forward(q, 0, 12, 1, keys, values, 4, 0, out, 0, 3, 2, 3, scratch));
        assertTrue(groups.getMessage().contains("not divisible"), groups.getMessage());
        IllegalArgumentException stride = assertThrows(IllegalArgumentException.class,
                () -> CachedAttention.forward(q, 0, 11, 1, keys, values, 4, 0, out, 0, 4, 2, 3, scratch));
        assertTrue(stride.getMessage().startsWith("q:"), stride.getMessage());
        IllegalArgumentException smallScratch = assertThrows(IllegalArgumentException.class,
                () -> CachedAttention.forward(q, 0, 12, 1, keys, values, 4, 0, out, 0, 4, 2, 3, new float[15]));
        assertTrue(smallScratch.getMessage().startsWith("scratch:"), smallScratch.getMessage());
        IllegalArgumentException smallCache = assertThrows(IllegalArgumentException.class,
                () -> CachedAttention.forward(q, 0, 12, 1, new float[23], values, 4, 0, out, 0, 4, 2, 3, scratch));
        assertTrue(smallCache.getMessage().startsWith("keys:"), smallCache.getMessage());
    }
}
