package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.VectorMath.LANES;
import static dev.loraflow.core.kernels.VectorMath.SPECIES;

import jdk.incubator.vector.FloatVector;

/**
 * LayerNorm (GPT-2) and RMSNorm (Llama) over the last dimension, float32, row-major.
 *
 * <p>Gradient contract: dx is written (=); dWeight and dBias are accumulated (+=), so the gradients
 * of several micro-batches, or of several calls on slices of one batch, add up in place. Pass null
 * parameter gradients for a frozen norm, the usual case in LoRA fine-tuning, to skip that work.
 *
 * <p>When a backward call is split over the cores, the parameter gradients are summed in a separate
 * pass over column slices rather than per row, so no two threads write the same element and the
 * result does not depend on the thread count.
 */
public final class Norms {

    private Norms() {}

    /**
     * LayerNorm: y = (x − mean)·rstd·weight + bias with rstd = 1/√(var + eps) and the biased
     * variance, as {@code torch.nn.LayerNorm}. mean and rstd are saved for the backward.
     *
     * @param x      [rows, dim]
     * @param weight [dim]
     * @param bias   [dim]
     * @param y      [rows, dim], written; may be x at the same offset
     * @param mean   [rows], written
     * @param rstd   [rows], written
     */
    public static void layerNormForward(float[] x, int xOff, float[] weight, int wOff, float[] bias, int bOff,
                                        float[] y, int yOff, float[] mean, int meanOff, float[] rstd, int rstdOff,
                                        int rows, int dim, float eps) {
        int n = Bounds.elements(rows, dim);
        Bounds.check(x, xOff, n, "x");
        Bounds.check(weight, wOff, dim, "weight");
        Bounds.check(bias, bOff, dim, "bias");
        Bounds.check(y, yOff, n, "y");
        Bounds.check(mean, meanOff, rows, "mean");
        Bounds.check(rstd, rstdOff, rows, "rstd");
        VectorMath.forRows(rows, dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                int xRow = xOff + r * dim;
                int yRow = yOff + r * dim;
                float mu = (float) (VectorMath.sumRange(x, xRow, dim) / dim);
                double variance = VectorMath.sumOfSquaredDeviationsRange(x, xRow, dim, mu) / dim;
                float rs = (float) (1.0 / Math.sqrt(variance + eps));
                mean[meanOff + r] = mu;
                rstd[rstdOff + r] = rs;
                FloatVector mus = FloatVector.broadcast(SPECIES, mu);
                int i = 0;
                for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
                    FloatVector.fromArray(SPECIES, x, xRow + i).sub(mus).mul(rs)
                            .fma(FloatVector.fromArray(SPECIES, weight, wOff + i), FloatVector.fromArray(SPECIES, bias, bOff + i))
                            .intoArray(y, yRow + i);
                }
                for (; i < dim; i++) {
                    y[yRow + i] = Math.fma((x[xRow + i] - mu) * rs, weight[wOff + i], bias[bOff + i]);
                }
            }
        });
    }

    /**
     * LayerNorm backward. With x̂ = (x − mean)·rstd and g = dy ⊙ weight:
     * dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)) is written (=); dWeight += Σ_rows dy ⊙ x̂ and
     * dBias += Σ_rows dy are accumulated, or skipped when both are null.
     *
     * @param dy      [rows, dim]
     * @param x       [rows, dim], the forward input
     * @param weight  [dim]
     * @param mean    [rows], saved by the forward
     * @param rstd    [rows], saved by the forward
     * @param dx      [rows, dim], written; may be dy at the same offset
     * @param dWeight [dim], accumulated, or null together with dBias
     * @param dBias   [dim], accumulated, or null together with dWeight
     */
    public static void layerNormBackward(float[] dy, int dyOff, float[] x, int xOff, float[] weight, int wOff,
                                         float[] mean, int meanOff, float[] rstd, int rstdOff,
                                         float[] dx, int dxOff, float[] dWeight, int dwOff, float[] dBias, int dbOff,
                                         int rows, int dim) {
        int n = Bounds.elements(rows, dim);
        Bounds.check(dy, dyOff, n, "dy");
        Bounds.check(x, xOff, n, "x");
        Bounds.check(weight, wOff, dim, "weight");
        Bounds.check(mean, meanOff, rows, "mean");
        Bounds.check(rstd, rstdOff, rows, "rstd");
        Bounds.check(dx, dxOff, n, "dx");
        if ((dWeight == null) != (dBias == null)) {
            throw new IllegalArgumentException("dWeight and dBias must both be given or both be null");
        }
        boolean withParams = dWeight != null;
        if (withParams) {
            Bounds.check(dWeight, dwOff, dim, "dWeight");
            Bounds.check(dBias, dbOff, dim, "dBias");
        }
        boolean split = VectorMath.rowsSplit(rows, dim);
        if (withParams && split) {
            // Before the dx pass, which may overwrite dy.
            Parallel.forRange(dim, LANES, LANES, (from, to) -> layerNormParamGradColumns(
                    dy, dyOff, x, xOff, mean, meanOff, rstd, rstdOff, dWeight, dwOff + from, dBias, dbOff + from,
                    from, to - from, rows, dim));
        }
        boolean fuseParams = withParams && !split;
        VectorMath.forRows(rows, dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                layerNormBackwardRow(dy, dyOff + r * dim, x, xOff + r * dim, weight, wOff,
                        mean[meanOff + r], rstd[rstdOff + r], dx, dxOff + r * dim,
                        fuseParams ? dWeight : null, dwOff, dBias, dbOff, dim);
            }
        });
    }

    /**
     * RMSNorm: y = x·rstd·weight with rstd = 1/√(mean(x²) + eps), as Hugging Face's
     * {@code LlamaRMSNorm} computes it in float32. rstd is saved for the backward.
     *
     * @param x      [rows, dim]
     * @param weight [dim]
     * @param y      [rows, dim], written; may be x at the same offset
     * @param rstd   [rows], written
     */
    public static void rmsNormForward(float[] x, int xOff, float[] weight, int wOff,
                                      float[] y, int yOff, float[] rstd, int rstdOff, int rows, int dim, float eps) {
        int n = Bounds.elements(rows, dim);
        Bounds.check(x, xOff, n, "x");
        Bounds.check(weight, wOff, dim, "weight");
        Bounds.check(y, yOff, n, "y");
        Bounds.check(rstd, rstdOff, rows, "rstd");
        VectorMath.forRows(rows, dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                int xRow = xOff + r * dim;
                int yRow = yOff + r * dim;
                float rs = (float) (1.0 / Math.sqrt(VectorMath.sumOfSquaresRange(x, xRow, dim) / dim + eps));
                rstd[rstdOff + r] = rs;
                int i = 0;
                for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
                    FloatVector.fromArray(SPECIES, x, xRow + i).mul(rs).mul(FloatVector.fromArray(SPECIES, weight, wOff + i))
                            .intoArray(y, yRow + i);
                }
                for (; i < dim; i++) {
                    y[yRow + i] = x[xRow + i] * rs * weight[wOff + i];
                }
            }
        });
    }

    /**
     * RMSNorm backward. With g = dy ⊙ weight: dx = rstd·g − x·rstd³·mean(g ⊙ x) is written (=);
     * dWeight += Σ_rows dy ⊙ x·rstd is accumulated, or skipped when null.
     *
     * @param dy      [rows, dim]
     * @param x       [rows, dim], the forward input
     * @param weight  [dim]
     * @param rstd    [rows], saved by the forward
     * @param dx      [rows, dim], written; may be dy at the same offset
     * @param dWeight [dim], accumulated, or null
     */
    public static void rmsNormBackward(float[] dy, int dyOff, float[] x, int xOff, float[] weight, int wOff,
                                       float[] rstd, int rstdOff, float[] dx, int dxOff, float[] dWeight, int dwOff,
                                       int rows, int dim) {
        int n = Bounds.elements(rows, dim);
        Bounds.check(dy, dyOff, n, "dy");
        Bounds.check(x, xOff, n, "x");
        Bounds.check(weight, wOff, dim, "weight");
        Bounds.check(rstd, rstdOff, rows, "rstd");
        Bounds.check(dx, dxOff, n, "dx");
        boolean withParams = dWeight != null;
        if (withParams) {
            Bounds.check(dWeight, dwOff, dim, "dWeight");
        }
        boolean split = VectorMath.rowsSplit(rows, dim);
        if (withParams && split) {
            // Before the dx pass, which may overwrite dy.
            Parallel.forRange(dim, LANES, LANES, (from, to) -> rmsNormParamGradColumns(
                    dy, dyOff, x, xOff, rstd, rstdOff, dWeight, dwOff + from, from, to - from, rows, dim));
        }
        boolean fuseParams = withParams && !split;
        VectorMath.forRows(rows, dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                rmsNormBackwardRow(dy, dyOff + r * dim, x, xOff + r * dim, weight, wOff, rstd[rstdOff + r],
                        dx, dxOff + r * dim, fuseParams ? dWeight : null, dwOff, dim);
            }
        });
    }

    private static void layerNormBackwardRow(float[] dy, int dyRow, float[] x, int xRow, float[] weight, int wOff,
                                             float mu, float rs, float[] dx, int dxRow,
                                             float[] dWeight, int dwOff, float[] dBias, int dbOff, int dim) {
        FloatVector mus = FloatVector.broadcast(SPECIES, mu);
        FloatVector gradSum = FloatVector.zero(SPECIES);
        FloatVector gradDotNorm = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            FloatVector norm = FloatVector.fromArray(SPECIES, x, xRow + i).sub(mus).mul(rs);
            FloatVector grad = FloatVector.fromArray(SPECIES, dy, dyRow + i).mul(FloatVector.fromArray(SPECIES, weight, wOff + i));
            gradSum = gradSum.add(grad);
            gradDotNorm = grad.fma(norm, gradDotNorm);
        }
        float sumTail = 0f;
        float dotTail = 0f;
        for (int j = i; j < dim; j++) {
            float grad = dy[dyRow + j] * weight[wOff + j];
            sumTail += grad;
            dotTail = Math.fma(grad, (x[xRow + j] - mu) * rs, dotTail);
        }
        float gradMean = (VectorMath.sumLanes(gradSum) + sumTail) / dim;
        float gradNormMean = (VectorMath.sumLanes(gradDotNorm) + dotTail) / dim;

        FloatVector gradMeans = FloatVector.broadcast(SPECIES, gradMean);
        FloatVector gradNormMeans = FloatVector.broadcast(SPECIES, gradNormMean);
        i = 0;
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyRow + i);
            FloatVector norm = FloatVector.fromArray(SPECIES, x, xRow + i).sub(mus).mul(rs);
            if (dWeight != null) {
                dyv.fma(norm, FloatVector.fromArray(SPECIES, dWeight, dwOff + i)).intoArray(dWeight, dwOff + i);
                dyv.add(FloatVector.fromArray(SPECIES, dBias, dbOff + i)).intoArray(dBias, dbOff + i);
            }
            dyv.mul(FloatVector.fromArray(SPECIES, weight, wOff + i)).sub(gradMeans).sub(norm.mul(gradNormMeans)).mul(rs)
                    .intoArray(dx, dxRow + i);
        }
        for (; i < dim; i++) {
            float dyi = dy[dyRow + i];
            float norm = (x[xRow + i] - mu) * rs;
            if (dWeight != null) {
                dWeight[dwOff + i] = Math.fma(dyi, norm, dWeight[dwOff + i]);
                dBias[dbOff + i] += dyi;
            }
            dx[dxRow + i] = (dyi * weight[wOff + i] - gradMean - norm * gradNormMean) * rs;
        }
    }

    /** dWeight[c] += Σ_rows dy·x̂ and dBias[c] += Σ_rows dy for the columns [col, col + cols). */
    private static void layerNormParamGradColumns(float[] dy, int dyOff, float[] x, int xOff,
                                                  float[] mean, int meanOff, float[] rstd, int rstdOff,
                                                  float[] dWeight, int dwOff, float[] dBias, int dbOff,
                                                  int col, int cols, int rows, int dim) {
        for (int r = 0; r < rows; r++) {
            int dyRow = dyOff + r * dim + col;
            int xRow = xOff + r * dim + col;
            float mu = mean[meanOff + r];
            float rs = rstd[rstdOff + r];
            FloatVector mus = FloatVector.broadcast(SPECIES, mu);
            int i = 0;
            for (int bound = SPECIES.loopBound(cols); i < bound; i += LANES) {
                FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyRow + i);
                FloatVector norm = FloatVector.fromArray(SPECIES, x, xRow + i).sub(mus).mul(rs);
                dyv.fma(norm, FloatVector.fromArray(SPECIES, dWeight, dwOff + i)).intoArray(dWeight, dwOff + i);
                dyv.add(FloatVector.fromArray(SPECIES, dBias, dbOff + i)).intoArray(dBias, dbOff + i);
            }
            for (; i < cols; i++) {
                float dyi = dy[dyRow + i];
                dWeight[dwOff + i] = Math.fma(dyi, (x[xRow + i] - mu) * rs, dWeight[dwOff + i]);
                dBias[dbOff + i] += dyi;
            }
        }
    }

    private static void rmsNormBackwardRow(float[] dy, int dyRow, float[] x, int xRow, float[] weight, int wOff,
                                           float rs, float[] dx, int dxRow, float[] dWeight, int dwOff, int dim) {
        FloatVector gradDotX = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            FloatVector grad = FloatVector.fromArray(SPECIES, dy, dyRow + i).mul(FloatVector.fromArray(SPECIES, weight, wOff + i));
            gradDotX = grad.fma(FloatVector.fromArray(SPECIES, x, xRow + i), gradDotX);
        }
        float dotTail = 0f;
        for (int j = i; j < dim; j++) {
            dotTail = Math.fma(dy[dyRow + j] * weight[wOff + j], x[xRow + j], dotTail);
        }
        float xCoefficient = (VectorMath.sumLanes(gradDotX) + dotTail) * rs * rs * rs / dim;

        i = 0;
        for (int bound = SPECIES.loopBound(dim); i < bound; i += LANES) {
            FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyRow + i);
            FloatVector xv = FloatVector.fromArray(SPECIES, x, xRow + i);
            if (dWeight != null) {
                dyv.fma(xv.mul(rs), FloatVector.fromArray(SPECIES, dWeight, dwOff + i)).intoArray(dWeight, dwOff + i);
            }
            dyv.mul(FloatVector.fromArray(SPECIES, weight, wOff + i)).mul(rs).sub(xv.mul(xCoefficient))
                    .intoArray(dx, dxRow + i);
        }
        for (; i < dim; i++) {
            float dyi = dy[dyRow + i];
            if (dWeight != null) {
                dWeight[dwOff + i] = Math.fma(dyi, x[xRow + i] * rs, dWeight[dwOff + i]);
            }
            dx[dxRow + i] = dyi * weight[wOff + i] * rs - x[xRow + i] * xCoefficient;
        }
    }

    /** dWeight[c] += Σ_rows dy·x·rstd for the columns [col, col + cols). */
    private static void rmsNormParamGradColumns(float[] dy, int dyOff, float[] x, int xOff, float[] rstd, int rstdOff,
                                                float[] dWeight, int dwOff, int col, int cols, int rows, int dim) {
        for (int r = 0; r < rows; r++) {
            int dyRow = dyOff + r * dim + col;
            int xRow = xOff + r * dim + col;
            float rs = rstd[rstdOff + r];
            int i = 0;
            for (int bound = SPECIES.loopBound(cols); i < bound; i += LANES) {
                FloatVector.fromArray(SPECIES, dy, dyRow + i)
                        .fma(FloatVector.fromArray(SPECIES, x, xRow + i).mul(rs), FloatVector.fromArray(SPECIES, dWeight, dwOff + i))
                        .intoArray(dWeight, dwOff + i);
            }
            for (; i < cols; i++) {
                dWeight[dwOff + i] = Math.fma(dy[dyRow + i], x[xRow + i] * rs, dWeight[dwOff + i]);
            }
        }
    }
}
