package dev.loraflow.core.kernels;

/** Plain triple-loop matrix multiply in double precision: the yardstick {@link Gemm} is tested against. */
public final class GemmReference {

    private GemmReference() {}

    /** Same contract as {@link Gemm#sgemm}, computed in double with no blocking. */
    public static void gemm(boolean transA, boolean transB, int m, int n, int k, double alpha,
                            double[] a, int aOff, int lda, double[] b, int bOff, int ldb,
                            double beta, double[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int p = 0; p < k; p++) {
                    double aip = transA ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
                    double bpj = transB ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
                    sum += aip * bpj;
                }
                int index = cOff + i * ldc + j;
                c[index] = alpha * sum + (beta == 0 ? 0 : beta * c[index]);
            }
        }
    }

    /** Y = X·Wᵀ. x [m, k], w [n, k], y [m, n]. */
    public static void matmulXWt(double[] x, double[] w, double[] y, int m, int k, int n, boolean accumulate) {
        gemm(false, true, m, n, k, 1, x, 0, k, w, 0, k, accumulate ? 1 : 0, y, 0, n);
    }

    /** dX = dY·W. dy [m, n], w [n, k], dx [m, k]. */
    public static void matmulDyW(double[] dy, double[] w, double[] dx, int m, int n, int k, boolean accumulate) {
        gemm(false, false, m, k, n, 1, dy, 0, n, w, 0, k, accumulate ? 1 : 0, dx, 0, k);
    }

    /** dW = dYᵀ·X. dy [m, n], x [m, k], dw [n, k]. */
    public static void matmulDyTX(double[] dy, double[] x, double[] dw, int m, int n, int k, boolean accumulate) {
        gemm(true, false, n, k, m, 1, dy, 0, n, x, 0, k, accumulate ? 1 : 0, dw, 0, k);
    }
}
