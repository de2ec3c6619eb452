package dev.loraflow.core.merge;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

import dev.loraflow.core.kernels.Parallel;
import dev.loraflow.core.safetensors.HalfFloats;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
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
     * @return the flat index of the first non-finite bfloat16 result (as {@link #apply}'s, but of the rounded values:
     *     a sum that rounds past bfloat16's largest value is one), or −1 when every element is finite
     */
    static long applyBf16(MemorySegment w, MemorySegment out, float[] coefficients, float[] basis, int rows, int cols,
                          int r) {
        float[][] basisRows = new float[r][];
        for (int k = 0; k < r; k++) {
            basisRows[k] = Arrays.copyOfRange(basis, k * cols, (k + 1) * cols);
        }
        return firstBadOverRows(rows, cols,
                (from, to) -> bf16RowsRange(w, out, coefficients, basisRows, cols, r, from, to));
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
     * A row at a time, in plain loops over arrays that C2 compiles to vector code within the first tensor: the row
     * widened into float32, one pass over it per k (each basis row an array of its own, since C2 does not vectorize a
     * loop that reads one array at an offset from where it writes another that may be the same), and rounded back.
     * The Vector API would be as fast once compiled, but runs as allocating Java until then, and a merge is over
     * within seconds of starting: in the BF16 merge of an 8 B model that phase churned gigabytes of garbage through
     * the heap, which G1 grew to hold.
     */
    private static long bf16RowsRange(MemorySegment w, MemorySegment out, float[] coefficients, float[][] basisRows,
                                      int cols, int r, int fromRow, int toRow) {
        float[] sums = new float[cols];
        short[] rounded = new short[cols];
        for (int i = fromRow; i < toRow; i++) {
            long row = (long) i * cols;
            widen(w, row, sums);
            for (int k = 0; k < r; k++) {
                addScaled(coefficients[i * r + k], basisRows[k], sums);
            }
            boolean finite = roundToBf16(sums, rounded);
            MemorySegment.copy(rounded, 0, out, BF16_BITS, 2 * row, cols);
            if (!finite) {
                for (int column = 0; column < cols; column++) {
                    if (!Float.isFinite(HalfFloats.fromBf16(rounded[column]))) {
                        return row + column;
                    }
                }
            }
        }
        return -1;
    }

    /** into[j] = the bfloat16 w[from + j], widened. */
    private static void widen(MemorySegment w, long from, float[] into) {
        for (int j = 0; j < into.length; j++) {
            into[j] = Float.intBitsToFloat(w.getAtIndex(BF16_BITS, from + j) << 16);
        }
    }

    /** sums[j] = fma(coefficient, basisRow[j], sums[j]). */
    private static void addScaled(float coefficient, float[] basisRow, float[] sums) {
        for (int j = 0; j < sums.length; j++) {
            sums[j] = Math.fma(coefficient, basisRow[j], sums[j]);
        }
    }

    /**
     * rounded[j] = {@link HalfFloats#toBf16}(values[j]) without its NaN branch (a NaN fails the merge whatever its
     * payload, and stays one: widened from bfloat16 or made by arithmetic, its low 16 bits are zero, so rounding
     * carries nothing into the exponent): whether every rounded value is finite, none with an exponent of all ones.
     */
    private static boolean roundToBf16(float[] values, short[] rounded) {
        int exponentsAllOnes = 0;
        for (int j = 0; j < values.length; j++) {
            int bits = Float.floatToRawIntBits(values[j]);
            int half = (bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16;
            rounded[j] = (short) half;
            // an exponent field of 0x7F80 (all ones) plus 0x80 carries into bit 15; any other does not
            exponentsAllOnes |= (half & 0x7F80) + 0x80;
        }
        return (exponentsAllOnes & 0x8000) == 0;
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
