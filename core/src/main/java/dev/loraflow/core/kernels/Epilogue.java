package dev.loraflow.core.kernels;

/**
 * Terms {@link Gemm#sgemm(boolean, boolean, int, int, int, float, float[], int, int, float[], int, int, float, float[], int, int, Epilogue)}
 * adds to C as it stores the last block of each tile: a bias per column and a low-rank product,
 * C[i, j] += bias[j] + scale·Σ_r U[i, r]·op(V)[r, j]. Fused there, a LoRA layer's
 * y = x·W0ᵀ + b + s·U·Bᵀ passes over y once instead of three times.
 *
 * @param bias   [n] from biasOff, or null for none
 * @param u      U [m, rank] (row stride ldu), or null for no low-rank term
 * @param v      op(V) [rank, n]: V stored [rank, n] (row stride ldv), or [n, rank] when transV
 * @param scale  the factor of U·op(V)
 * @param dropoutMask when not null, the low-rank term of C[i, j] counts only where bit
 *               maskOffset + i·maskStride + j is set (a {@link Dropout} mask; its 1/(1 − p) belongs in scale)
 */
public record Epilogue(float[] bias, int biasOff, float[] u, int uOff, int ldu,
                       float[] v, int vOff, int ldv, boolean transV, int rank, float scale,
                       long[] dropoutMask, long maskOffset, int maskStride) {

    /** Only a bias [n]. */
    public static Epilogue bias(float[] bias) {
        return new Epilogue(bias, 0, null, 0, 0, null, 0, 0, false, 0, 0f, null, 0, 0);
    }

    /**
     * bias (may be null) + scale·U·op(V): U [m, rank] with row stride ldu; V [rank, n], or [n, rank] when
     * transV, with row stride ldv.
     */
    public static Epilogue lowRank(float[] bias, float[] u, int ldu, float[] v, int ldv, boolean transV, int rank, float scale) {
        return new Epilogue(bias, 0, u, 0, ldu, v, 0, ldv, transV, rank, scale, null, 0, 0);
    }

    /** The low-rank term only where the dropout mask (one bit per element of C, rows n apart) kept an element. */
    public Epilogue masked(long[] mask, int n) {
        return new Epilogue(bias, biasOff, u, uOff, ldu, v, vOff, ldv, transV, rank, scale, mask, 0, n);
    }

    boolean hasLowRank() {
        return u != null && rank > 0;
    }

    /** The same terms for the sub-block of C starting at row {@code row}, column {@code column}. */
    Epilogue slice(int row, int column) {
        return new Epilogue(bias, biasOff + column, u, uOff + row * ldu, ldu,
                v, vOff + (transV ? column * ldv : column), ldv, transV, rank, scale,
                dropoutMask, maskOffset + (long) row * maskStride + column, maskStride);
    }
}
