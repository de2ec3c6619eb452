package dev.loraflow.core.merge;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

import dev.loraflow.core.kernels.Parallel;
import dev.loraflow.core.safetensors.HalfFloats;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
    private static final ValueLayout.OfShort BF16_BITS = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LITTLE_ENDIAN);
    private static final int LANES = SPECIES.length();
    /** Columns of a BF16 row updated together: independent fma chains, enough to keep the FMA units busy. */
    private static final int BF16_BLOCK = 8;
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
        return firstBadOverRows(rows, cols, (from, to) -> rowsRange(w, coefficients, basis, out, cols, r, from, to));
    }

    /**
     * The same update on a bfloat16 matrix: out[i, j] = bf16(widen(w[i, j]) + Σ_k coefficients[i, k]·basis[k, j]),
     * each element's float32 sum formed exactly as {@link #apply} forms it and rounded as
     * {@link HalfFloats#toBf16(float)} rounds, so the bytes are those of widening, {@code apply} and rounding in
     * three passes — in one pass, with no float32 copy of the weight.
     *
     * @param w   [rows, cols] little-endian bfloat16, read only
     * @param out [rows, cols] little-endian bfloat16; may be w itself
     * @return as {@link #apply}, the float32 sum (before rounding) deciding what is finite
     */
    static long applyBf16(MemorySegment w, MemorySegment out, float[] coefficients, float[] basis, int rows, int cols,
                          int r) {
        return firstBadOverRows(rows, cols, (from, to) -> bf16RowsRange(w, out, coefficients, basis, cols, r, from, to));
    }

    /** A range of rows' update: the flat index of its first non-finite result, or −1. */
    @FunctionalInterface
    private interface RowsUpdate {
        long run(int fromRow, int toRow);
    }

    private static long firstBadOverRows(int rows, int cols, RowsUpdate update) {
        long[] firstBad = {Long.MAX_VALUE};
        int grain = Math.max(1, MIN_ELEMENTS_PER_TASK / cols);
        Parallel.forRange(rows, grain, (from, to) -> {
            long bad = update.run(from, to);
            if (bad >= 0) {
                synchronized (firstBad) {
                    firstBad[0] = Math.min(firstBad[0], bad);
                }
            }
        });
        return firstBad[0] == Long.MAX_VALUE ? -1 : firstBad[0];
    }

    /**
     * Scalar, a block of {@value #BF16_BLOCK} columns at a time so that as many fma chains run side by side: Vector
     * API code runs as allocating Java until C2 has compiled it, and a merge is over within seconds of starting —
     * in the BF16 merge of an 8 B model that phase churned gigabytes of garbage through the heap, which G1 grew to
     * hold (peak RSS 1.1–2.4 GiB from run to run), while this loop is as fast from its first C1 compilation on.
     */
    private static long bf16RowsRange(MemorySegment w, MemorySegment out, float[] coefficients, float[] basis, int cols,
                                      int r, int fromRow, int toRow) {
        float[] sums = new float[BF16_BLOCK];
        for (int i = fromRow; i < toRow; i++) {
            long row = (long) i * cols;
            int coefficientRow = i * r;
            boolean finite = true;
            for (int j = 0; j < cols; j += BF16_BLOCK) {
                int width = Math.min(BF16_BLOCK, cols - j);
                if (width == BF16_BLOCK) {
                    float s0 = widen(w, row + j);
                    float s1 = widen(w, row + j + 1);
                    float s2 = widen(w, row + j + 2);
                    float s3 = widen(w, row + j + 3);
                    float s4 = widen(w, row + j + 4);
                    float s5 = widen(w, row + j + 5);
                    float s6 = widen(w, row + j + 6);
                    float s7 = widen(w, row + j + 7);
                    for (int k = 0; k < r; k++) {
                        float c = coefficients[coefficientRow + k];
                        int at = k * cols + j;
                        s0 = Math.fma(c, basis[at], s0);
                        s1 = Math.fma(c, basis[at + 1], s1);
                        s2 = Math.fma(c, basis[at + 2], s2);
                        s3 = Math.fma(c, basis[at + 3], s3);
                        s4 = Math.fma(c, basis[at + 4], s4);
                        s5 = Math.fma(c, basis[at + 5], s5);
                        s6 = Math.fma(c, basis[at + 6], s6);
                        s7 = Math.fma(c, basis[at + 7], s7);
                    }
                    sums[0] = s0;
                    sums[1] = s1;
                    sums[2] = s2;
                    sums[3] = s3;
                    sums[4] = s4;
                    sums[5] = s5;
                    sums[6] = s6;
                    sums[7] = s7;
                } else {
                    for (int c = 0; c < width; c++) {
                        float sum = widen(w, row + j + c);
                        for (int k = 0; k < r; k++) {
                            sum = Math.fma(coefficients[coefficientRow + k], basis[k * cols + j + c], sum);
                        }
                        sums[c] = sum;
                    }
                }
                for (int c = 0; c < width; c++) {
                    out.setAtIndex(BF16_BITS, row + j + c, HalfFloats.toBf16(sums[c]));
                    finite &= Float.isFinite(sums[c]);
                }
            }
            if (!finite) {
                // bfloat16 keeps infinities and NaN: the first non-finite rounded value is where a sum was not finite
                // (or, rarely, an earlier one that rounding took past bfloat16's largest value: an error all the same)
                for (int column = 0; column < cols; column++) {
                    if (!Float.isFinite(HalfFloats.fromBf16(out.getAtIndex(BF16_BITS, row + column)))) {
                        return row + column;
                    }
                }
            }
        }
        return -1;
    }

    private static float widen(MemorySegment w, long index) {
        return HalfFloats.fromBf16(w.getAtIndex(BF16_BITS, index));
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
