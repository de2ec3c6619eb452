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
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.function.DoubleSupplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class NormsTest {

    private static final float EPS = 1e-5f;

    /**
     * Each row size with one and with three rows, plus shapes whose backward is split over the cores
     * (and so takes the separate column pass for the parameter gradients).
     */
    static Stream<Arguments> shapes() {
        return Stream.concat(
                Arrays.stream(SIZES).boxed().flatMap(dim -> Stream.of(Arguments.of(1, dim), Arguments.of(3, dim))),
                Stream.of(Arguments.of(SoftmaxTest.splitRows(769), 769), Arguments.of(SoftmaxTest.splitRows(3077), 3077)));
    }

    @Test
    void referenceLayerNormBackwardMatchesFiniteDifferences() {
        Random random = new Random(1);
        int rows = 3;
        int dim = 7;
        double[] x = gaussianDoubles(random, rows * dim, 1, 2);
        double[] weight = gaussianDoubles(random, dim, 1, 0.3);
        double[] bias = gaussianDoubles(random, dim, 0, 0.5);
        double[] g = gaussianDoubles(random, rows * dim, 0, 1);
        double[] y = new double[rows * dim];
        double[] mean = new double[rows];
        double[] rstd = new double[rows];
        NormsReference.layerNormForward(x, 0, weight, 0, bias, 0, y, 0, mean, 0, rstd, 0, rows, dim, EPS);
        double[] dx = new double[rows * dim];
        double[] dWeight = new double[dim];
        double[] dBias = new double[dim];
        NormsReference.layerNormBackward(g, 0, x, 0, weight, 0, mean, 0, rstd, 0, dx, 0, dWeight, 0, dBias, 0, rows, dim);

        DoubleSupplier loss = () -> {
            double[] out = new double[rows * dim];
            NormsReference.layerNormForward(x, 0, weight, 0, bias, 0, out, 0, new double[rows], 0, new double[rows], 0,
                    rows, dim, EPS);
            return weightedSum(out, g);
        };
        assertGradient("layer norm dx", dx, numericGradient(x, loss));
        assertGradient("layer norm dWeight", dWeight, numericGradient(weight, loss));
        assertGradient("layer norm dBias", dBias, numericGradient(bias, loss));
    }

    @Test
    void referenceRmsNormBackwardMatchesFiniteDifferences() {
        Random random = new Random(2);
        int rows = 3;
        int dim = 7;
        double[] x = gaussianDoubles(random, rows * dim, 0.5, 1);
        double[] weight = gaussianDoubles(random, dim, 1, 0.3);
        double[] g = gaussianDoubles(random, rows * dim, 0, 1);
        double[] y = new double[rows * dim];
        double[] rstd = new double[rows];
        NormsReference.rmsNormForward(x, 0, weight, 0, y, 0, rstd, 0, rows, dim, EPS);
        double[] dx = new double[rows * dim];
        double[] dWeight = new double[dim];
        NormsReference.rmsNormBackward(g, 0, x, 0, weight, 0, rstd, 0, dx, 0, dWeight, 0, rows, dim);

        DoubleSupplier loss = () -> {
            double[] out = new double[rows * dim];
            NormsReference.rmsNormForward(x, 0, weight, 0, out, 0, new double[rows], 0, rows, dim, EPS);
            return weightedSum(out, g);
        };
        assertGradient("rms norm dx", dx, numericGradient(x, loss));
        assertGradient("rms norm dWeight", dWeight, numericGradient(weight, loss));
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void layerNormMatchesReference(int rows, int dim) {
        Random random = new Random(31L * rows + dim);
        int n = rows * dim;
        float[] x = gaussian(random, n, 2, 3);
        float[] weight = gaussian(random, dim, 1, 0.3);
        float[] bias = gaussian(random, dim, 0, 0.5);
        float[] dy = gaussian(random, n, 0, 1);
        // Parameter gradients start non-zero: the kernels must add to them.
        float[] dWeight = gaussian(random, dim, 0, 1);
        float[] dBias = gaussian(random, dim, 0, 1);
        double[] dWeightRef = widen(dWeight);
        double[] dBiasRef = widen(dBias);

        float[] y = new float[n];
        float[] mean = new float[rows];
        float[] rstd = new float[rows];
        Norms.layerNormForward(x, 0, weight, 0, bias, 0, y, 0, mean, 0, rstd, 0, rows, dim, EPS);
        double[] yRef = new double[n];
        double[] meanRef = new double[rows];
        double[] rstdRef = new double[rows];
        NormsReference.layerNormForward(widen(x), 0, widen(weight), 0, widen(bias), 0, yRef, 0, meanRef, 0, rstdRef, 0,
                rows, dim, EPS);
        assertCloseToReference("y", yRef, y);
        assertCloseToReference("mean", meanRef, mean);
        assertCloseToReference("rstd", rstdRef, rstd);

        float[] dx = new float[n];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dx, 0, dWeight, 0, dBias, 0, rows, dim);
        double[] dxRef = new double[n];
        NormsReference.layerNormBackward(widen(dy), 0, widen(x), 0, widen(weight), 0, widen(mean), 0, widen(rstd), 0,
                dxRef, 0, dWeightRef, 0, dBiasRef, 0, rows, dim);
        assertCloseToReference("dx", dxRef, dx, gradientTermScale(dy, weight, rstd, rows, dim));
        assertCloseToReference("dWeight", dWeightRef, dWeight);
        assertCloseToReference("dBias", dBiasRef, dBias);

        float[] dxFrozen = new float[n];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dxFrozen, 0, null, 0, null, 0, rows, dim);
        assertArrayEquals(dx, dxFrozen, "dx without parameter gradients");
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void rmsNormMatchesReference(int rows, int dim) {
        Random random = new Random(17L * rows + dim);
        int n = rows * dim;
        float[] x = gaussian(random, n, 0.5, 1);
        float[] weight = gaussian(random, dim, 1, 0.3);
        float[] dy = gaussian(random, n, 0, 1);
        float[] dWeight = gaussian(random, dim, 0, 1);
        double[] dWeightRef = widen(dWeight);

        float[] y = new float[n];
        float[] rstd = new float[rows];
        Norms.rmsNormForward(x, 0, weight, 0, y, 0, rstd, 0, rows, dim, EPS);
        double[] yRef = new double[n];
        double[] rstdRef = new double[rows];
        NormsReference.rmsNormForward(widen(x), 0, widen(weight), 0, yRef, 0, rstdRef, 0, rows, dim, EPS);
        assertCloseToReference("y", yRef, y);
        assertCloseToReference("rstd", rstdRef, rstd);

        float[] dx = new float[n];
        Norms.rmsNormBackward(dy, 0, x, 0, weight, 0, rstd, 0, dx, 0, dWeight, 0, rows, dim);
        double[] dxRef = new double[n];
        NormsReference.rmsNormBackward(widen(dy), 0, widen(x), 0, widen(weight), 0, widen(rstd), 0, dxRef, 0,
                dWeightRef, 0, rows, dim);
        assertCloseToReference("dx", dxRef, dx, gradientTermScale(dy, weight, rstd, rows, dim));
        assertCloseToReference("dWeight", dWeightRef, dWeight);

        float[] dxFrozen = new float[n];
        Norms.rmsNormBackward(dy, 0, x, 0, weight, 0, rstd, 0, dxFrozen, 0, null, 0, rows, dim);
        assertArrayEquals(dx, dxFrozen, "dx without parameter gradients");
    }

    @Test
    void splitBackwardEqualsRowSlicesAccumulatedOneAfterAnother() {
        // All rows are split over the cores; half of them are not. Column sums run in row order
        // either way, so the parameter gradients agree to the bit, whatever the thread count.
        Random random = new Random(9);
        int dim = 769;
        int half = VectorMath.PARALLEL_MIN_ELEMENTS / dim + 1;
        int rows = 2 * half;
        assertTrue(VectorMath.rowsSplit(rows, dim) || Parallel.threads() == 1);
        assertFalse(VectorMath.rowsSplit(half, dim));
        float[] x = gaussian(random, rows * dim, 2, 3);
        float[] weight = gaussian(random, dim, 1, 0.3);
        float[] bias = gaussian(random, dim, 0, 0.5);
        float[] dy = gaussian(random, rows * dim, 0, 1);
        float[] y = new float[rows * dim];
        float[] mean = new float[rows];
        float[] rstd = new float[rows];
        Norms.layerNormForward(x, 0, weight, 0, bias, 0, y, 0, mean, 0, rstd, 0, rows, dim, EPS);

        float[] dxWhole = new float[rows * dim];
        float[] dWeightWhole = new float[dim];
        float[] dBiasWhole = new float[dim];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dxWhole, 0, dWeightWhole, 0, dBiasWhole, 0,
                rows, dim);

        float[] dxSlices = new float[rows * dim];
        float[] dWeightSlices = new float[dim];
        float[] dBiasSlices = new float[dim];
        for (int start = 0; start < rows; start += half) {
            Norms.layerNormBackward(dy, start * dim, x, start * dim, weight, 0, mean, start, rstd, start,
                    dxSlices, start * dim, dWeightSlices, 0, dBiasSlices, 0, half, dim);
        }
        assertArrayEquals(dxWhole, dxSlices);
        assertArrayEquals(dWeightWhole, dWeightSlices);
        assertArrayEquals(dBiasWhole, dBiasSlices);

        float[] rmsRstd = new float[rows];
        Norms.rmsNormForward(x, 0, weight, 0, y, 0, rmsRstd, 0, rows, dim, EPS);
        float[] rmsWhole = new float[dim];
        Norms.rmsNormBackward(dy, 0, x, 0, weight, 0, rmsRstd, 0, dxWhole, 0, rmsWhole, 0, rows, dim);
        float[] rmsSlices = new float[dim];
        for (int start = 0; start < rows; start += half) {
            Norms.rmsNormBackward(dy, start * dim, x, start * dim, weight, 0, rmsRstd, start, dxSlices, start * dim,
                    rmsSlices, 0, half, dim);
        }
        assertArrayEquals(rmsWhole, rmsSlices);
    }

    @Test
    void backwardMayOverwriteDyWithDx() {
        Random random = new Random(10);
        int dim = 769;
        int rows = SoftmaxTest.splitRows(dim);
        float[] x = gaussian(random, rows * dim, 2, 3);
        float[] weight = gaussian(random, dim, 1, 0.3);
        float[] bias = gaussian(random, dim, 0, 0.5);
        float[] dy = gaussian(random, rows * dim, 0, 1);
        float[] y = new float[rows * dim];
        float[] mean = new float[rows];
        float[] rstd = new float[rows];
        Norms.layerNormForward(x, 0, weight, 0, bias, 0, y, 0, mean, 0, rstd, 0, rows, dim, EPS);

        float[] dx = new float[rows * dim];
        float[] dWeight = new float[dim];
        float[] dBias = new float[dim];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dx, 0, dWeight, 0, dBias, 0, rows, dim);
        float[] dWeightInPlace = new float[dim];
        float[] dBiasInPlace = new float[dim];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dy, 0, dWeightInPlace, 0, dBiasInPlace, 0,
                rows, dim);
        assertArrayEquals(dx, dy);
        assertArrayEquals(dWeight, dWeightInPlace);
        assertArrayEquals(dBias, dBiasInPlace);
    }

    @Test
    void constantRowStaysFinite() {
        int dim = 769;
        float[] x = new float[2 * dim];
        Arrays.fill(x, 0, dim, 3.7f);
        Arrays.fill(x, dim, 2 * dim, -1e4f);
        float[] weight = gaussian(new Random(11), dim, 1, 0.3);
        float[] bias = gaussian(new Random(12), dim, 0, 0.5);
        float[] y = new float[2 * dim];
        float[] mean = new float[2];
        float[] rstd = new float[2];
        Norms.layerNormForward(x, 0, weight, 0, bias, 0, y, 0, mean, 0, rstd, 0, 2, dim, EPS);
        assertAllFinite("y", y);
        assertAllFinite("rstd", rstd);
        for (int i = 0; i < dim; i++) {
            // x − mean is at most the rounding of the mean, which rstd = 1/√eps magnifies 316-fold.
            assertEquals(bias[i], y[i], 1e-3, "constant row normalizes to the bias");
        }

        float[] dy = gaussian(new Random(13), 2 * dim, 0, 1);
        float[] dx = new float[2 * dim];
        float[] dWeight = new float[dim];
        float[] dBias = new float[dim];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dx, 0, dWeight, 0, dBias, 0, 2, dim);
        assertAllFinite("dx", dx);
        assertAllFinite("dWeight", dWeight);

        float[] zeros = new float[dim];
        float[] rmsY = new float[dim];
        float[] rmsRstd = new float[1];
        Norms.rmsNormForward(zeros, 0, weight, 0, rmsY, 0, rmsRstd, 0, 1, dim, EPS);
        for (float v : rmsY) {
            assertEquals(0f, v, 0f);
        }
        Norms.rmsNormBackward(dy, 0, zeros, 0, weight, 0, rmsRstd, 0, dx, 0, dWeight, 0, 1, dim);
        assertAllFinite("rms dx of a zero row", dx);
    }

    /**
     * max |rstd·dy·weight|, the size of the terms dx is a difference of: on short rows the terms can
     * cancel to far below their own size (RMSNorm of one element is ±weight, with gradient ≈ 0).
     */
    private static double gradientTermScale(float[] dy, float[] weight, float[] rstd, int rows, int dim) {
        double scale = 0;
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < dim; i++) {
                scale = Math.max(scale, Math.abs((double) rstd[r] * dy[r * dim + i] * weight[i]));
            }
        }
        return scale;
    }

    @Test
    void layerNormParameterGradientsComeInPairs() {
        float[] a = new float[4];
        float[] stats = new float[1];
        assertThrows(IllegalArgumentException.class,
                () -> Norms.layerNormBackward(a, 0, a, 0, a, 0, stats, 0, stats, 0, a, 0, a, 0, null, 0, 1, 4));
    }
}
