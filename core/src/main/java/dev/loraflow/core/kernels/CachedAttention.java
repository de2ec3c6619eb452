package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.VectorMath.LANES;
import static dev.loraflow.core.kernels.VectorMath.SPECIES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Attention of new tokens over a key/value cache, for generation, float32: one sequence whose first
 * {@code past} positions are cached, and {@code count} new query rows at positions past..past+count−1,
 * row i attending to keys 0..past+i — every cached position and, causally, the new ones up to itself.
 * Grouped-query as {@link Attention}: query head h reads kv head h / (H / Hkv); scores scaled by 1/√D
 * unless an {@link AttentionSpec} sets another scale, a soft-cap or a sliding window.
 *
 * <p>The cache of one layer holds keys transposed, [Hkv, D, capacity], and values [Hkv, capacity, D].
 * A score row q·Kᵀ is then a sum over d of q[d] times a contiguous row of keys, computed across keys
 * in the vector lanes, and p·V a sum over keys of contiguous value rows across d: neither needs a
 * horizontal reduction, every sum runs in one fixed order (d ascending, then keys ascending), and a
 * result does not depend on the vector width or the thread count.
 */
public final class CachedAttention {

    /** Work below which a second thread costs more than it saves: ~100 µs, as in {@link Attention}. */
    private static final long PARALLEL_MIN_MULTIPLY_ADDS = 1L << 22;

    private CachedAttention() {}

    /** Floats of the scratch {@link #forward} needs: one score row per query head. */
    public static int scratchLength(int heads, int capacity) {
        return Bounds.elements(heads, capacity);
    }

    /**
     * Writes the keys and values of {@code count} new tokens into the cache at positions
     * position..position+count−1.
     *
     * @param k         [count, Hkv·D], rows {@code rowStride} apart (a fused projection's row is wider)
     * @param v         [count, Hkv·D], rows {@code rowStride} apart
     * @param keys      [Hkv, D, capacity], written at the new positions
     * @param values    [Hkv, capacity, D], written at the new positions
     * @throws IllegalArgumentException if the positions pass the capacity or an array is too small
     */
    public static void append(float[] k, int kOff, float[] v, int vOff, int rowStride, int count,
                              float[] keys, float[] values, int capacity, int position, int kvHeads, int headDim) {
        int width = AttentionShapes.elements(1, 1, kvHeads, headDim);
        checkCache(keys, values, capacity, kvHeads, headDim);
        if (count < 0 || position < 0 || position > capacity - count) {
            throw new IllegalArgumentException("positions [" + position + ", " + position + " + " + count
                    + ") outside the cache's capacity " + capacity);
        }
        if (count == 0) {
            return;
        }
        checkRows(k, kOff, rowStride, count, width, "k");
        checkRows(v, vOff, rowStride, count, width, "v");
        for (int i = 0; i < count; i++) {
            int at = position + i;
            for (int kvh = 0; kvh < kvHeads; kvh++) {
                int from = i * rowStride + kvh * headDim;
                int keyColumn = kvh * headDim * capacity + at;
                for (int d = 0; d < headDim; d++) {
                    keys[keyColumn + d * capacity] = k[kOff + from + d];
                }
                System.arraycopy(v, vOff + from, values, (kvh * capacity + at) * headDim, headDim);
            }
        }
    }

    /**
     * out = softmax(q·kᵀ/√D over keys 0..past+i)·v for each new row i and query head.
     *
     * @param q       [count, H·D], rows {@code qRowStride} apart
     * @param keys    [Hkv, D, capacity], filled at positions [0, past + count)
     * @param values  [Hkv, capacity, D], filled at positions [0, past + count)
     * @param out     [count, H·D], written
     * @param scratch at least {@link #scratchLength}(H, capacity) floats, overwritten
     * @throws IllegalArgumentException if H is not a multiple of Hkv, past + count passes the capacity,
     *                                  or an array is too small for its shape
     */
    public static void forward(float[] q, int qOff, int qRowStride, int count, float[] keys, float[] values,
                               int capacity, int past, float[] out, int outOff, int heads, int kvHeads, int headDim,
                               float[] scratch) {
        forward(q, qOff, qRowStride, count, keys, values, capacity, past, out, outOff, heads, kvHeads, headDim, scratch,
                AttentionSpec.causal(headDim));
    }

    /**
     * {@link #forward} with the scale, soft-cap and sliding window of {@code spec}: row i attends to keys
     * [spec's first visible key of past + i, past + i].
     */
    public static void forward(float[] q, int qOff, int qRowStride, int count, float[] keys, float[] values,
                               int capacity, int past, float[] out, int outOff, int heads, int kvHeads, int headDim,
                               float[] scratch, AttentionSpec spec) {
        int queryWidth = AttentionShapes.checkHeads(1, 1, heads, kvHeads, headDim);
        checkCache(keys, values, capacity, kvHeads, headDim);
        if (count < 0 || past < 0 || past > capacity - count) {
            throw new IllegalArgumentException("queries at [" + past + ", " + past + " + " + count
                    + ") outside the cache's capacity " + capacity);
        }
        if (count == 0) {
            return;
        }
        checkRows(q, qOff, qRowStride, count, queryWidth, "q");
        Bounds.check(out, outOff, Bounds.elements(count, queryWidth), "out");
        Bounds.check(scratch, 0, scratchLength(heads, capacity), "scratch");
        int group = heads / kvHeads;
        float scale = spec.scale();
        long perHead = 2L * count * (past + count) * headDim;
        int grain = (int) Math.max(1, PARALLEL_MIN_MULTIPLY_ADDS / perHead);
        Parallel.forRange(heads, grain, (from, to) -> {
            for (int h = from; h < to; h++) {
                int kvh = h / group;
                int scores = h * capacity;
                int keyHead = kvh * headDim * capacity;
                int valueHead = kvh * capacity * headDim;
                for (int i = 0; i < count; i++) {
                    int visible = past + i + 1;
                    int start = spec.firstVisibleKey(past + i);
                    int queryRow = qOff + i * qRowStride + h * headDim;
                    int outRow = outOff + i * queryWidth + h * headDim;
                    scoreRow(q, queryRow, keys, keyHead, capacity, headDim, scale, scratch, scores, visible);
                    spec.capInPlace(scratch, scores + start, visible - start);
                    softmaxInPlace(scratch, scores + start, visible - start);
                    weightedValues(scratch, scores, start, visible, values, valueHead, headDim, out, outRow);
                }
            }
        });
    }

    /** scores[j] = Σ_d q[d]·K[d, j] · scale for j < visible, d ascending, keys across the lanes. */
    private static void scoreRow(float[] q, int queryRow, float[] keys, int keyHead, int capacity, int headDim,
                                 float scale, float[] scores, int scoresOff, int visible) {
        int j = 0;
        for (int bound = visible - 4 * LANES; j <= bound; j += 4 * LANES) {
            FloatVector s0 = FloatVector.zero(SPECIES);
            FloatVector s1 = FloatVector.zero(SPECIES);
            FloatVector s2 = FloatVector.zero(SPECIES);
            FloatVector s3 = FloatVector.zero(SPECIES);
            for (int d = 0; d < headDim; d++) {
                FloatVector qd = FloatVector.broadcast(SPECIES, q[queryRow + d]);
                int row = keyHead + d * capacity + j;
                s0 = FloatVector.fromArray(SPECIES, keys, row).fma(qd, s0);
                s1 = FloatVector.fromArray(SPECIES, keys, row + LANES).fma(qd, s1);
                s2 = FloatVector.fromArray(SPECIES, keys, row + 2 * LANES).fma(qd, s2);
                s3 = FloatVector.fromArray(SPECIES, keys, row + 3 * LANES).fma(qd, s3);
            }
            s0.mul(scale).intoArray(scores, scoresOff + j);
            s1.mul(scale).intoArray(scores, scoresOff + j + LANES);
            s2.mul(scale).intoArray(scores, scoresOff + j + 2 * LANES);
            s3.mul(scale).intoArray(scores, scoresOff + j + 3 * LANES);
        }
        for (; j < visible; j += LANES) {
            VectorMask<Float> inRange = SPECIES.indexInRange(j, visible);
            FloatVector s = FloatVector.zero(SPECIES);
            for (int d = 0; d < headDim; d++) {
                FloatVector qd = FloatVector.broadcast(SPECIES, q[queryRow + d]);
                s = FloatVector.fromArray(SPECIES, keys, keyHead + d * capacity + j, inRange).fma(qd, s);
            }
            s.mul(scale).intoArray(scores, scoresOff + j, inRange);
        }
    }

    /** p = softmax of the row in place; the normaliser summed in double, keys ascending. */
    private static void softmaxInPlace(float[] row, int off, int n) {
        float max = VectorMath.maxRange(row, off, n);
        double sum = 0;
        for (int j = 0; j < n; j++) {
            float e = (float) Math.exp(row[off + j] - max);
            row[off + j] = e;
            sum += e;
        }
        VectorMath.scaleRange((float) (1 / sum), row, off, n);
    }

    /** out[d] = Σ_j p[j]·V[j, d] over j ∈ [start, visible), keys ascending, d across the lanes. */
    private static void weightedValues(float[] p, int pOff, int start, int visible, float[] values, int valueHead,
                                       int headDim, float[] out, int outRow) {
        VectorMath.fill(out, outRow, headDim, 0f);
        for (int j = start; j < visible; j++) {
            FloatVector pj = FloatVector.broadcast(SPECIES, p[pOff + j]);
            int row = valueHead + j * headDim;
            int d = 0;
            for (int bound = SPECIES.loopBound(headDim); d < bound; d += LANES) {
                FloatVector.fromArray(SPECIES, values, row + d).fma(pj, FloatVector.fromArray(SPECIES, out, outRow + d))
                        .intoArray(out, outRow + d);
            }
            if (d < headDim) {
                VectorMask<Float> tail = SPECIES.indexInRange(d, headDim);
                FloatVector.fromArray(SPECIES, values, row + d, tail)
                        .fma(pj, FloatVector.fromArray(SPECIES, out, outRow + d, tail))
                        .intoArray(out, outRow + d, tail);
            }
        }
    }

    private static void checkCache(float[] keys, float[] values, int capacity, int kvHeads, int headDim) {
        int elements = AttentionShapes.elements(1, capacity, kvHeads, headDim);
        Bounds.check(keys, 0, elements, "keys");
        Bounds.check(values, 0, elements, "values");
    }

    /** {@code count} rows of {@code width} floats, {@code stride} apart from {@code off}. */
    private static void checkRows(float[] array, int off, int stride, int count, int width, String name) {
        if (stride < width) {
            throw new IllegalArgumentException(name + ": row stride " + stride + " is below the row width " + width);
        }
        Bounds.check(array, off, Math.addExact(Math.multiplyExact(count - 1, stride), width), name);
    }
}
