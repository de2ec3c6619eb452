package dev.loraflow.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class GemmTest {

    static Stream<Arguments> shapes() {
        int[][] mnk = {
            {1, 1, 1}, {1, 17, 5}, {3, 1, 7}, {8, 32, 16}, {7, 33, 31}, {9, 31, 257}, {17, 65, 300},
            {64, 8, 768}, {512, 8, 64}, {8, 768, 512}, {130, 1030, 40}, {257, 97, 513}, {512, 96, 96},
            // decoding steps: a few rows against a wide weight, read in place
            {1, 2304, 768}, {2, 70, 33}, {3, 1027, 300}, {4, 17, 1},
        };
        Stream.Builder<Arguments> all = Stream.builder();
        for (int[] s : mnk) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    all.add(Arguments.of(s[0], s[1], s[2], ta, tb));
                }
            }
        }
        return all.build();
    }

    @ParameterizedTest(name = "m={0} n={1} k={2} transA={3} transB={4}")
    @MethodSource("shapes")
    void matchesDoubleReferenceInEveryLayout(int m, int n, int k, boolean transA, boolean transB) {
        Random random = new Random(31L * m + 7L * n + k + (transA ? 1 : 0) + (transB ? 2 : 0));
        int lda = (transA ? m : k) + 3;
        int ldb = (transB ? k : n) + 5;
        int ldc = n + 2;
        int aOff = 4;
        int bOff = 1;
        int cOff = 6;
        float[] a = KernelChecks.gaussian(random, aOff + (transA ? k : m) * lda, 0, 1);
        float[] b = KernelChecks.gaussian(random, bOff + (transB ? n : k) * ldb, 0, 1);
        float[] c = KernelChecks.gaussian(random, cOff + m * ldc, 0, 1);
        float alpha = 0.75f;
        float beta = -0.5f;
        double[] expected = KernelChecks.widen(c);
        GemmReference.gemm(transA, transB, m, n, k, alpha, KernelChecks.widen(a), aOff, lda, KernelChecks.widen(b), bOff, ldb,
                beta, expected, cOff, ldc);
        Gemm.sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        double tolerance = 1e-5 * Math.sqrt(k) * 2;
        for (int i = 0; i < c.length; i++) {
            boolean inside = i >= cOff && (i - cOff) / ldc < m && (i - cOff) % ldc < n;
            assertEquals(expected[i], c[i], inside ? tolerance : 0, "element " + i + (inside ? "" : " outside C changed"));
        }
    }

    static Stream<Arguments> epilogueShapes() {
        // m, n, k, rank, transB, transV, masked — blocked (sliced by columns and by rows), thin and k = 0 paths
        return Stream.of(
                Arguments.of(512, 100, 40, 8, true, true, false),
                Arguments.of(130, 1030, 70, 4, false, false, true),
                Arguments.of(2000, 64, 33, 8, true, false, true),
                Arguments.of(9, 37, 300, 1, false, true, true),
                Arguments.of(300, 7, 50, 3, true, true, true),
                Arguments.of(17, 40, 0, 2, false, false, false),
                Arguments.of(5, 3, 4, 16, false, true, false),
                Arguments.of(1, 2304, 768, 8, true, false, true),
                Arguments.of(3, 100, 64, 2, false, true, false));
    }

    @ParameterizedTest(name = "m={0} n={1} k={2} rank={3} transB={4} transV={5} masked={6}")
    @MethodSource("epilogueShapes")
    void epilogueAddsBiasAndTheMaskedLowRankTerm(int m, int n, int k, int rank, boolean transB, boolean transV, boolean masked) {
        Random random = new Random(m * 7L + n * 3L + k + rank);
        float[] a = KernelChecks.gaussian(random, m * k, 0, 1);
        float[] b = KernelChecks.gaussian(random, k * n, 0, 1);
        float[] bias = KernelChecks.gaussian(random, n + 2, 0, 1);
        float[] u = KernelChecks.gaussian(random, m * rank, 0, 1);
        float[] v = KernelChecks.gaussian(random, rank * n, 0, 1);
        float[] c = KernelChecks.gaussian(random, m * n, 0, 1);
        long[] mask = new long[(m * n + 63) / 64];
        for (int i = 0; i < mask.length; i++) {
            mask[i] = random.nextLong();
        }
        float scale = 1.25f;
        float beta = 0.5f;
        double[] expected = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int p = 0; p < k; p++) {
                    sum += a[i * k + p] * (double) (transB ? b[j * k + p] : b[p * n + j]);
                }
                double lowRank = 0;
                for (int r = 0; r < rank; r++) {
                    lowRank += u[i * rank + r] * (double) (transV ? v[j * rank + r] : v[r * n + j]);
                }
                int index = i * n + j;
                boolean kept = !masked || ((mask[index >>> 6] >>> (index & 63)) & 1) != 0;
                expected[index] = sum + beta * c[index] + bias[2 + j] + (kept ? scale * lowRank : 0);
            }
        }
        Epilogue epilogue = new Epilogue(bias, 2, u, 0, rank, v, 0, transV ? rank : n, transV, rank, scale,
                null, 0, 0);
        Gemm.sgemm(false, transB, m, n, k, 1f, a, 0, k, b, 0, transB ? k : n, beta, c, 0, n,
                masked ? epilogue.masked(mask, n) : epilogue);
        double tolerance = 1e-5 * Math.sqrt(k + rank) * 4;
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], c[i], tolerance * Math.max(1, Math.abs(expected[i])), "element " + i);
        }
    }

    @Test
    void epilogueArraysAreCheckedBeforeAnythingIsWritten() {
        float[] c = new float[16];
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false,
                4, 4, 4, 1f, new float[16], 0, 4, new float[16], 0, 4, 0f, c, 0, 4, Epilogue.bias(new float[3])));
        assertTrue(error.getMessage().startsWith("bias"), error.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false, 4, 4, 4, 1f, new float[16], 0, 4,
                new float[16], 0, 4, 0f, c, 0, 4, Epilogue.lowRank(null, new float[7], 2, new float[8], 4, false, 2, 1f)));
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false, 40, 40, 4, 1f, new float[160], 0, 4,
                new float[160], 0, 40, 0f, new float[1600], 0, 40,
                Epilogue.lowRank(null, new float[80], 2, new float[80], 40, false, 2, 1f).masked(new long[3], 40)));
    }

    @Test
    void betaZeroIgnoresNaNInC() {
        int m = 9, n = 40, k = 12;
        float[] a = KernelChecks.gaussian(new Random(1), m * k, 0, 1);
        float[] b = KernelChecks.gaussian(new Random(2), k * n, 0, 1);
        float[] c = new float[m * n];
        java.util.Arrays.fill(c, Float.NaN);
        Gemm.sgemm(false, false, m, n, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n);
        for (float v : c) {
            assertTrue(Float.isFinite(v));
        }
    }

    @Test
    void linearLayerLayoutsAgreeWithReference() {
        Random random = new Random(5);
        int m = 70, k = 45, n = 100;
        float[] x = KernelChecks.gaussian(random, m * k, 0, 1);
        float[] w = KernelChecks.gaussian(random, n * k, 0, 1);
        float[] dy = KernelChecks.gaussian(random, m * n, 0, 1);
        float[] y = new float[m * n];
        float[] dx = new float[m * k];
        float[] dw = KernelChecks.gaussian(random, n * k, 0, 1);
        double[] yRef = new double[m * n];
        double[] dxRef = new double[m * k];
        double[] dwRef = KernelChecks.widen(dw);
        Gemm.matmulXWt(x, w, y, m, k, n, false);
        Gemm.matmulDyW(dy, w, dx, m, n, k, false);
        Gemm.matmulDyTX(dy, x, dw, m, n, k, true);
        GemmReference.matmulXWt(KernelChecks.widen(x), KernelChecks.widen(w), yRef, m, k, n, false);
        GemmReference.matmulDyW(KernelChecks.widen(dy), KernelChecks.widen(w), dxRef, m, n, k, false);
        GemmReference.matmulDyTX(KernelChecks.widen(dy), KernelChecks.widen(x), dwRef, m, n, k, true);
        assertClose(yRef, y, 1e-4);
        assertClose(dxRef, dx, 1e-4);
        assertClose(dwRef, dw, 1e-4);
    }

    @ParameterizedTest(name = "transA={0} transB={1}")
    @MethodSource("layouts")
    void chunksSharedByThreadsGiveTheBitsOfSingleThreadedColumnSlices(boolean transA, boolean transB) {
        // m·n·k is over the threading threshold, each 40-column slice under it (and wider than a thin C):
        // the whole product takes the chunked multi-threaded path, the slices the single-threaded one.
        Random random = new Random(transA ? 11 : 13);
        int m = 96, n = 400, k = 250;
        float[] a = KernelChecks.gaussian(random, m * k, 0, 1);
        float[] b = KernelChecks.gaussian(random, k * n, 0, 1);
        int lda = transA ? m : k;
        int ldb = transB ? k : n;
        float[] whole = KernelChecks.gaussian(random, m * n, 0, 1);
        float[] slices = whole.clone();
        Gemm.sgemm(transA, transB, m, n, k, 0.5f, a, 0, lda, b, 0, ldb, 2f, whole, 0, n);
        int width = 40;
        for (int from = 0; from < n; from += width) {
            Gemm.sgemm(transA, transB, m, Math.min(width, n - from), k, 0.5f, a, 0, lda,
                    b, transB ? from * ldb : from, ldb, 2f, slices, from, n);
        }
        assertArrayEquals(slices, whole);
    }

    @ParameterizedTest(name = "transA={0} transB={1}")
    @MethodSource("layouts")
    void deepProductsPackedInRowBlocksGiveTheBitsOfRowSlices(boolean transA, boolean transB) {
        // k this deep makes the threaded path pack op(A) 128 rows at a time: 200 rows take two blocks,
        // each 40-row slice one.
        Random random = new Random(transB ? 17 : 19);
        int m = 200, n = 256, k = 17_000;
        float[] a = KernelChecks.gaussian(random, m * k, 0, 1);
        float[] b = KernelChecks.gaussian(random, k * n, 0, 1);
        int lda = transA ? m : k;
        int ldb = transB ? k : n;
        float[] whole = KernelChecks.gaussian(random, m * n, 0, 1);
        float[] slices = whole.clone();
        Gemm.sgemm(transA, transB, m, n, k, 1f, a, 0, lda, b, 0, ldb, 1f, whole, 0, n);
        int height = 40;
        for (int from = 0; from < m; from += height) {
            Gemm.sgemm(transA, transB, Math.min(height, m - from), n, k, 1f, a, transA ? from : from * lda, lda,
                    b, 0, ldb, 1f, slices, from * n, n);
        }
        assertArrayEquals(slices, whole);
    }

    @ParameterizedTest(name = "transB={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void decodingRowsGiveTheSameBitsWhateverTheThreadsSplit(boolean transB) {
        // 2304 × 768 is over the threading threshold and the columns are split among threads; 40-column
        // slices under it run on one thread: each element must not depend on which ran it.
        Random random = new Random(transB ? 23 : 29);
        int m = 3, n = 2304, k = 768;
        float[] a = KernelChecks.gaussian(random, m * k, 0, 1);
        float[] b = KernelChecks.gaussian(random, k * n, 0, 1);
        int ldb = transB ? k : n;
        float[] whole = KernelChecks.gaussian(random, m * n, 0, 1);
        float[] slices = whole.clone();
        Gemm.sgemm(false, transB, m, n, k, 0.5f, a, 0, k, b, 0, ldb, 2f, whole, 0, n);
        for (int from = 0; from < n; from += 40) {
            Gemm.sgemm(false, transB, m, Math.min(40, n - from), k, 0.5f, a, 0, k,
                    b, transB ? from * ldb : from, ldb, 2f, slices, from, n);
        }
        assertArrayEquals(slices, whole);
    }

    static Stream<Arguments> layouts() {
        return Stream.of(Arguments.of(false, false), Arguments.of(false, true), Arguments.of(true, false), Arguments.of(true, true));
    }

    @Test
    void rejectsArraysTooSmallForTheShape() {
        float[] small = new float[10];
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                () -> Gemm.matmulXWt(small, new float[100], new float[100], 10, 10, 10, false));
        assertTrue(error.getMessage().startsWith("A:"), error.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false, -1, 1, 1, 1f,
                small, 0, 1, small, 0, 1, 0f, small, 0, 1));
    }

    static void assertClose(double[] expected, float[] actual, double tolerance) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            double scale = Math.max(1, Math.abs(expected[i]));
            assertEquals(expected[i], actual[i], tolerance * scale, "element " + i);
        }
    }
}
