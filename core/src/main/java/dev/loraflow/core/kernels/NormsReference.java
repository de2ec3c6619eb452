package dev.loraflow.core.kernels;

/**
 * Plain double-precision loops with the same contracts as {@link Norms}: the ground truth the
 * vectorized float kernels are tested against. dx is written (=); dWeight and dBias are accumulated
 * (+=), or skipped when null.
 */
public final class NormsReference {

    private NormsReference() {}

    /**
     * y = (x − mean)·rstd·weight + bias, rstd = 1/√(var + eps), biased variance. x [rows, dim],
     * weight [dim], bias [dim], y [rows, dim], mean [rows] and rstd [rows] written.
     */
    public static void layerNormForward(double[] x, int xOff, double[] weight, int wOff, double[] bias, int bOff,
                                        double[] y, int yOff, double[] mean, int meanOff, double[] rstd, int rstdOff,
                                        int rows, int dim, double eps) {
        for (int r = 0; r < rows; r++) {
            int xRow = xOff + r * dim;
            double mu = VectorMathReference.sum(x, xRow, dim) / dim;
            double variance = 0;
            for (int i = 0; i < dim; i++) {
                double d = x[xRow + i] - mu;
                variance += d * d;
            }
            variance /= dim;
            double rs = 1 / Math.sqrt(variance + eps);
            mean[meanOff + r] = mu;
            rstd[rstdOff + r] = rs;
            for (int i = 0; i < dim; i++) {
                y[yOff + r * dim + i] = (x[xRow + i] - mu) * rs * weight[wOff + i] + bias[bOff + i];
            }
        }
    }

    /**
     * dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)) with g = dy ⊙ weight, written; dWeight += Σ dy ⊙ x̂,
     * dBias += Σ dy. dy, x, dx [rows, dim]; weight, dWeight, dBias [dim]; mean, rstd [rows].
     */
    public static void layerNormBackward(double[] dy, int dyOff, double[] x, int xOff, double[] weight, int wOff,
                                         double[] mean, int meanOff, double[] rstd, int rstdOff,
                                         double[] dx, int dxOff, double[] dWeight, int dwOff, double[] dBias, int dbOff,
                                         int rows, int dim) {
        for (int r = 0; r < rows; r++) {
            double mu = mean[meanOff + r];
            double rs = rstd[rstdOff + r];
            double gradMean = 0;
            double gradNormMean = 0;
            for (int i = 0; i < dim; i++) {
                double grad = dy[dyOff + r * dim + i] * weight[wOff + i];
                gradMean += grad;
                gradNormMean += grad * (x[xOff + r * dim + i] - mu) * rs;
            }
            gradMean /= dim;
            gradNormMean /= dim;
            for (int i = 0; i < dim; i++) {
                double dyi = dy[dyOff + r * dim + i];
                double norm = (x[xOff + r * dim + i] - mu) * rs;
                if (dWeight != null) {
                    dWeight[dwOff + i] += dyi * norm;
                }
                if (dBias != null) {
                    dBias[dbOff + i] += dyi;
                }
                dx[dxOff + r * dim + i] = (dyi * weight[wOff + i] - gradMean - norm * gradNormMean) * rs;
            }
        }
    }

    /** y = x·rstd·weight, rstd = 1/√(mean(x²) + eps). x [rows, dim], weight [dim], y [rows, dim], rstd [rows] written. */
    public static void rmsNormForward(double[] x, int xOff, double[] weight, int wOff,
                                      double[] y, int yOff, double[] rstd, int rstdOff, int rows, int dim, double eps) {
        for (int r = 0; r < rows; r++) {
            int xRow = xOff + r * dim;
            double rs = 1 / Math.sqrt(VectorMathReference.sumOfSquares(x, xRow, dim) / dim + eps);
            rstd[rstdOff + r] = rs;
            for (int i = 0; i < dim; i++) {
                y[yOff + r * dim + i] = x[xRow + i] * rs * weight[wOff + i];
            }
        }
    }

    /**
     * dx = rstd·g − x·rstd³·mean(g ⊙ x) with g = dy ⊙ weight, written; dWeight += Σ dy ⊙ x·rstd.
     * dy, x, dx [rows, dim]; weight, dWeight [dim]; rstd [rows].
     */
    public static void rmsNormBackward(double[] dy, int dyOff, double[] x, int xOff, double[] weight, int wOff,
                                       double[] rstd, int rstdOff, double[] dx, int dxOff, double[] dWeight, int dwOff,
                                       int rows, int dim) {
        for (int r = 0; r < rows; r++) {
            double rs = rstd[rstdOff + r];
            double gradDotX = 0;
            for (int i = 0; i < dim; i++) {
                gradDotX += dy[dyOff + r * dim + i] * weight[wOff + i] * x[xOff + r * dim + i];
            }
            double xCoefficient = gradDotX * rs * rs * rs / dim;
            for (int i = 0; i < dim; i++) {
                double dyi = dy[dyOff + r * dim + i];
                double xi = x[xOff + r * dim + i];
                if (dWeight != null) {
                    dWeight[dwOff + i] += dyi * xi * rs;
                }
                dx[dxOff + r * dim + i] = dyi * weight[wOff + i] * rs - xi * xCoefficient;
            }
        }
    }
}
