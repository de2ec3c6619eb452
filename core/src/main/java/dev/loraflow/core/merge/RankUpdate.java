package dev.loraflow.core.merge;

import dev.loraflow.core.kernels.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The merge's one kernel: {@code out = w + coefficients·basis}, a rank-r update of a row-major matrix in
 * one pass, so the base weight is read once and the merged one written once — the memory traffic of
 * copying it. Each element is an fma chain over k in order, vector lanes and scalar
 * tail alike, so the result does not depend on the vector width, the thread count or the JIT.
 */
final class RankUpdate {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    /** Rows per task: a task should copy about a megabyte before another core is worth waking. */
    private static final int MIN_ELEMENTS_PER_TASK = 1 << 18;

    private RankUpdate() {}

    /**
     * out[i, j] = w[i, j] + Σ_k coefficients[i, k]·basis[k, j].
     *
     * @param w            [rows, cols], read only
     * @param coefficients [rows, r]
     * @param basis        [r, cols]
     * @param out          [rows, cols]; may be w itself, since each element depends on its own input only
     * @return the flat index of a non-finite result (the first in a row-ordered scan of the first row
     *     holding one), or −1 when every element is finite
     */
    static long apply(float[] w, float[] coefficients, float[] basis, float[] out, int rows, int cols, int r) {
        long[] firstBad = {Long.MAX_VALUE};
        int grain = Math.max(1, MIN_ELEMENTS_PER_TASK / cols);
        Parallel.forRange(rows, grain, (from, to) -> {
            long bad = rowsRange(w, coefficients, basis, out, cols, r, from, to);
            if (bad >= 0) {
                synchronized (firstBad) {
                    firstBad[0] = Math.min(firstBad[0], bad);
                }
            }
        });
        return firstBad[0] == Long.MAX_VALUE ? -1 : firstBad[0];
    }

    private static long rowsRange(float[] w, float[] coefficients, float[] basis, float[] out, int cols, int r,
                                  int fromRow, int toRow) {
        int vectorEnd = SPECIES.loopBound(cols);
        FloatVector zero = FloatVector.zero(SPECIES);
        for (int i = fromRow; i < toRow; i++) {
            int row = i * cols;
            int coefficientRow = i * r;
            // 0·x is 0 for finite x and NaN for ±Inf and NaN: one extra fma per vector finds any of them.
            FloatVector probe = zero;
            int j = 0;
            for (; j < vectorEnd; j += LANES) {
                FloatVector sum = FloatVector.fromArray(SPECIES, w, row + j);
                for (int k = 0; k < r; k++) {
                    FloatVector direction = FloatVector.fromArray(SPECIES, basis, k * cols + j);
                    sum = direction.fma(FloatVector.broadcast(SPECIES, coefficients[coefficientRow + k]), sum);
                }
                sum.intoArray(out, row + j);
                probe = sum.fma(zero, probe);
            }
            boolean finite = !probe.test(VectorOperators.IS_NAN).anyTrue();
            for (; j < cols; j++) {
                float sum = w[row + j];
                for (int k = 0; k < r; k++) {
                    sum = Math.fma(coefficients[coefficientRow + k], basis[k * cols + j], sum);
                }
                out[row + j] = sum;
                finite &= Float.isFinite(sum);
            }
            if (!finite) {
                for (int column = 0; column < cols; column++) {
                    if (!Float.isFinite(out[row + column])) {
                        return (long) row + column;
                    }
                }
            }
        }
        return -1;
    }
}
