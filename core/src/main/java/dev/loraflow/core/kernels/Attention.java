package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.VectorMath.LANES;
import static dev.loraflow.core.kernels.VectorMath.SPECIES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Causal multi-head self-attention, float32, with grouped-query attention as in Llama: query head h
 * reads kv head h / (H / Hkv). Tensors keep the row-major layout a projection produces, q [B, T, H, D]
 * and k, v [B, T, Hkv, D], so one head of one sequence is a strided [T, D] matrix that {@link Gemm}
 * multiplies in place, with no transposing copies. Scores are scaled by 1/√D and position t attends
 * to positions 0..t, unless an {@link AttentionSpec} sets another scale, a soft-cap or a sliding window.
 *
 * <p>Query rows go in blocks of 64, each multiplied only with the keys its last row
 * may see, so a long sequence costs about half the products of the full [T, T] score matrix.
 *
 * <p>The forward saves only the log-sum-exp of each score row, [B, H, T], not the probabilities
 * [B, H, T, T]: the backward recomputes the scores with one extra product per block, a fifth of the
 * backward's arithmetic, and keeps T² floats per head out of the activations held between passes.
 * Each thread works in a [64, T] scratch buffer (two in the backward) that it
 * grows once and then reuses.
 */
public final class Attention {

    /** Work of one (batch, head) pair below which a second thread costs more than it saves: ~100 µs. */
    private static final int PARALLEL_MIN_MULTIPLY_ADDS = 1 << 22;

    /**
     * Query rows per block. A block's scores only reach the keys its last row sees, which skips
     * nearly half of the [T, T] products of a long sequence; 64 rows still fill Gemm's panels.
     */
    private static final int BLOCK_ROWS = 64;

    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private Attention() {}

    /**
     * out = softmax(q·kᵀ/√D + causal mask)·v per (batch, head), and the log-sum-exp of each score row.
     *
     * @param q         [B, T, H, D]
     * @param k         [B, T, Hkv, D]
     * @param v         [B, T, Hkv, D]
     * @param out       [B, T, H, D], written
     * @param logSumExp [B, H, T], written: log Σ_{j≤t} exp(score_tj), what {@link #backward} needs
     * @throws IllegalArgumentException if H is not a multiple of Hkv, a size is not positive, or an
     *                                  array is too small for its shape
     */
    public static void forward(float[] q, int qOff, float[] k, int kOff, float[] v, int vOff,
                               float[] out, int outOff, float[] logSumExp, int lseOff,
                               int batch, int seqLen, int heads, int kvHeads, int headDim) {
        forward(q, qOff, k, kOff, v, vOff, out, outOff, logSumExp, lseOff, batch, seqLen, heads, kvHeads, headDim,
                AttentionSpec.causal(headDim));
    }

    /**
     * {@link #forward} with the scale, soft-cap and sliding window of {@code spec}: query t attends to
     * keys [spec's first visible key, t].
     */
    public static void forward(float[] q, int qOff, float[] k, int kOff, float[] v, int vOff,
                               float[] out, int outOff, float[] logSumExp, int lseOff,
                               int batch, int seqLen, int heads, int kvHeads, int headDim, AttentionSpec spec) {
        int queryElements = AttentionShapes.checkHeads(batch, seqLen, heads, kvHeads, headDim);
        int kvElements = AttentionShapes.elements(batch, seqLen, kvHeads, headDim);
        Bounds.check(q, qOff, queryElements, "q");
        Bounds.check(k, kOff, kvElements, "k");
        Bounds.check(v, vOff, kvElements, "v");
        Bounds.check(out, outOff, queryElements, "out");
        Bounds.check(logSumExp, lseOff, AttentionShapes.elements(batch, heads, seqLen, 1), "logSumExp");
        if (seqLen == 0) {
            return;
        }
        Layout layout = new Layout(seqLen, heads, kvHeads, headDim, spec);
        Parallel.forRange(batch * heads, layout.pairGrain(), (from, to) -> {
            float[] probabilities = scratch(layout.blockElements());
            for (int pair = from; pair < to; pair++) {
                int b = pair / heads;
                int h = pair % heads;
                int qHead = qOff + layout.queryHeadOffset(b, h);
                int outHead = outOff + layout.queryHeadOffset(b, h);
                int kvHead = layout.kvHeadOffset(b, layout.kvHeadOf(h));
                int lseRow = lseOff + pair * seqLen;
                for (int first = 0; first < seqLen; first += BLOCK_ROWS) {
                    int rows = Math.min(BLOCK_ROWS, seqLen - first);
                    int keys = first + rows;
                    layout.blockScores(q, qHead, first, rows, k, kOff + kvHead, probabilities);
                    for (int row = 0; row < rows; row++) {
                        int start = spec.firstVisibleKey(first + row);
                        int visible = first + row + 1;
                        spec.capInPlace(probabilities, row * keys + start, visible - start);
                        logSumExp[lseRow + first + row] = causalSoftmaxRow(probabilities, row * keys, start, visible, keys);
                    }
                    Gemm.sgemm(false, false, rows, headDim, keys, 1f, probabilities, 0, keys,
                            v, vOff + kvHead, layout.kvStride, 0f, out, outHead + first * layout.queryStride, layout.queryStride);
                }
            }
        });
    }

    /**
     * dq, dk, dv of {@link #forward}, written (=). dk and dv of a kv head sum the contributions of
     * every query head that reads it.
     *
     * @param dout      [B, T, H, D], gradient of the loss with respect to out
     * @param q         [B, T, H, D], as given to the forward
     * @param k         [B, T, Hkv, D], as given to the forward
     * @param v         [B, T, Hkv, D], as given to the forward
     * @param logSumExp [B, H, T], as saved by the forward
     * @param dq        [B, T, H, D], written
     * @param dk        [B, T, Hkv, D], written
     * @param dv        [B, T, Hkv, D], written
     * @throws IllegalArgumentException as {@link #forward}
     */
    public static void backward(float[] dout, int doutOff, float[] q, int qOff, float[] k, int kOff,
                                float[] v, int vOff, float[] logSumExp, int lseOff,
                                float[] dq, int dqOff, float[] dk, int dkOff, float[] dv, int dvOff,
                                int batch, int seqLen, int heads, int kvHeads, int headDim) {
        backward(dout, doutOff, q, qOff, k, kOff, v, vOff, logSumExp, lseOff, dq, dqOff, dk, dkOff, dv, dvOff,
                batch, seqLen, heads, kvHeads, headDim, AttentionSpec.causal(headDim));
    }

    /** {@link #backward} of the forward with {@code spec}. */
    public static void backward(float[] dout, int doutOff, float[] q, int qOff, float[] k, int kOff,
                                float[] v, int vOff, float[] logSumExp, int lseOff,
                                float[] dq, int dqOff, float[] dk, int dkOff, float[] dv, int dvOff,
                                int batch, int seqLen, int heads, int kvHeads, int headDim, AttentionSpec spec) {
        int queryElements = AttentionShapes.checkHeads(batch, seqLen, heads, kvHeads, headDim);
        int kvElements = AttentionShapes.elements(batch, seqLen, kvHeads, headDim);
        Bounds.check(dout, doutOff, queryElements, "dout");
        Bounds.check(q, qOff, queryElements, "q");
        Bounds.check(k, kOff, kvElements, "k");
        Bounds.check(v, vOff, kvElements, "v");
        Bounds.check(logSumExp, lseOff, AttentionShapes.elements(batch, heads, seqLen, 1), "logSumExp");
        Bounds.check(dq, dqOff, queryElements, "dq");
        Bounds.check(dk, dkOff, kvElements, "dk");
        Bounds.check(dv, dvOff, kvElements, "dv");
        if (seqLen == 0) {
            return;
        }
        Layout layout = new Layout(seqLen, heads, kvHeads, headDim, spec);
        int group = heads / kvHeads;
        boolean capped = spec.logitSoftcap() > 0;
        float scale = layout.scale;
        // One task owns a kv head and all the query heads that read it, so dk and dv are summed
        // without two threads ever writing the same rows.
        Parallel.forRange(batch * kvHeads, Math.max(1, layout.pairGrain() / group), (from, to) -> {
            int block = layout.blockElements();
            // A third block keeps the capped scores, whose tanh the cap's derivative needs.
            float[] buffers = scratch((capped ? 3 : 2) * block);
            for (int kvPair = from; kvPair < to; kvPair++) {
                int b = kvPair / kvHeads;
                int kvh = kvPair % kvHeads;
                int kvHead = layout.kvHeadOffset(b, kvh);
                for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                    int qHead = layout.queryHeadOffset(b, h);
                    int lseRow = lseOff + (b * heads + h) * seqLen;
                    // The last block reaches every key, so going backwards lets the first product of a
                    // kv head's first query head write all of dk and dv (beta 0) before the rest add.
                    for (int first = (seqLen - 1) / BLOCK_ROWS * BLOCK_ROWS; first >= 0; first -= BLOCK_ROWS) {
                        int rows = Math.min(BLOCK_ROWS, seqLen - first);
                        int keys = first + rows;
                        int queryRows = qHead + first * layout.queryStride;
                        float accumulate = h == kvh * group && keys == seqLen ? 0f : 1f;
                        layout.blockScores(q, qOff + qHead, first, rows, k, kOff + kvHead, buffers);
                        for (int row = 0; row < rows; row++) {
                            int start = spec.firstVisibleKey(first + row);
                            int visible = first + row + 1;
                            spec.capInPlace(buffers, row * keys + start, visible - start);
                            if (capped) {
                                System.arraycopy(buffers, row * keys, buffers, 2 * block + row * keys, keys);
                            }
                            probabilitiesFromLogSumExp(buffers, row * keys, start, visible, keys,
                                    logSumExp[lseRow + first + row]);
                        }
                        Gemm.sgemm(true, false, keys, headDim, rows, 1f, buffers, 0, keys,
                                dout, doutOff + queryRows, layout.queryStride, accumulate, dv, dvOff + kvHead, layout.kvStride);
                        Gemm.sgemm(false, true, rows, keys, headDim, 1f, dout, doutOff + queryRows, layout.queryStride,
                                v, vOff + kvHead, layout.kvStride, 0f, buffers, block, keys);
                        for (int row = 0; row < rows; row++) {
                            int start = spec.firstVisibleKey(first + row);
                            int visible = first + row + 1;
                            softmaxBackwardRow(buffers, row * keys, block + row * keys, start, visible, keys);
                            if (capped) {
                                capBackwardRow(buffers, block + row * keys, 2 * block + row * keys, start, visible,
                                        spec.logitSoftcap());
                            }
                        }
                        Gemm.sgemm(false, false, rows, headDim, keys, scale, buffers, block, keys,
                                k, kOff + kvHead, layout.kvStride, 0f, dq, dqOff + queryRows, layout.queryStride);
                        Gemm.sgemm(true, false, keys, headDim, rows, scale, buffers, block, keys,
                                q, qOff + queryRows, layout.queryStride, accumulate, dk, dkOff + kvHead, layout.kvStride);
                    }
                }
            }
        });
    }

    /** Strides and offsets of one call's [B, T, heads, D] tensors. */
    private record Layout(int seqLen, int heads, int kvHeads, int headDim, int queryStride, int kvStride, float scale) {

        Layout(int seqLen, int heads, int kvHeads, int headDim, AttentionSpec spec) {
            this(seqLen, heads, kvHeads, headDim, heads * headDim, kvHeads * headDim, spec.scale());
        }

        /** Scratch of one block of scores: at most BLOCK_ROWS rows of at most T keys. */
        int blockElements() {
            return Math.multiplyExact(Math.min(BLOCK_ROWS, seqLen), seqLen);
        }

        /** (batch, head) pairs per task: enough that a task is worth a thread. */
        int pairGrain() {
            long perPair = (long) seqLen * seqLen * headDim;
            return (int) Math.max(1, PARALLEL_MIN_MULTIPLY_ADDS / perPair);
        }

        int kvHeadOf(int head) {
            return head / (heads / kvHeads);
        }

        /** Offset of row 0 of query head h of sequence b, relative to the tensor's start. */
        int queryHeadOffset(int b, int h) {
            return (b * seqLen * heads + h) * headDim;
        }

        int kvHeadOffset(int b, int kvh) {
            return (b * seqLen * kvHeads + kvh) * headDim;
        }

        /**
         * scores [rows, first + rows] = q rows [first, first + rows) · keys [0, first + rows)ᵀ / √D: only
         * the keys the block's last row can see. The entries above the diagonal inside the block, and
         * those before a sliding window, are computed but unused.
         */
        void blockScores(float[] q, int qHead, int first, int rows, float[] k, int kHead, float[] scores) {
            Gemm.sgemm(false, true, rows, first + rows, headDim, scale, q, qHead + first * queryStride, queryStride,
                    k, kHead, kvStride, 0f, scores, 0, first + rows);
        }
    }

    private static float[] scratch(int elements) {
        float[] buffer = SCRATCH.get();
        if (buffer.length < elements) {
            buffer = new float[elements];
            SCRATCH.set(buffer);
        }
        return buffer;
    }

    /**
     * Softmax of the scores [start, visible) of a row in place, zeroing the masked rest so the row can
     * enter a product over all of the block's keys. Returns the row's log-sum-exp.
     */
    private static float causalSoftmaxRow(float[] row, int rowOff, int start, int visible, int rowLength) {
        int n = visible - start;
        float max = VectorMath.maxRange(row, rowOff + start, n);
        double sum = expShiftedInPlace(row, rowOff + start, n, max);
        VectorMath.scaleRange((float) (1 / sum), row, rowOff + start, n);
        VectorMath.fill(row, rowOff, start, 0f);
        VectorMath.fill(row, rowOff + visible, rowLength - visible, 0f);
        return (float) (max + Math.log(sum));
    }

    /** The forward's probabilities again, exp(score − logSumExp), from the saved log-sum-exp. */
    private static void probabilitiesFromLogSumExp(float[] row, int rowOff, int start, int visible, int rowLength,
                                                   float logSumExp) {
        expShiftedInPlace(row, rowOff + start, visible - start, logSumExp);
        VectorMath.fill(row, rowOff, start, 0f);
        VectorMath.fill(row, rowOff + visible, rowLength - visible, 0f);
    }

    /** d(raw score) = d(capped)·(1 − tanh²) with tanh = capped / cap, over the visible keys of a row. */
    private static void capBackwardRow(float[] buffers, int dOff, int cappedOff, int start, int visible, float cap) {
        for (int j = start; j < visible; j++) {
            float t = buffers[cappedOff + j] / cap;
            buffers[dOff + j] *= 1 - t * t;
        }
    }

    /** x = exp(x − shift) over [off, off + n), returning Σ x. */
    private static double expShiftedInPlace(float[] x, int off, int n, float shift) {
        FloatVector shifts = FloatVector.broadcast(SPECIES, shift);
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector e = VectorMath.exp(FloatVector.fromArray(SPECIES, x, off + i).sub(shifts));
            e.intoArray(x, off + i);
            acc = acc.add(e);
        }
        if (i < n) {
            VectorMask<Float> tail = SPECIES.indexInRange(i, n);
            FloatVector e = VectorMath.exp(FloatVector.fromArray(SPECIES, x, off + i, tail).sub(shifts));
            e.intoArray(x, off + i, tail);
            acc = acc.add(e, tail);
        }
        return VectorMath.sumLanes(acc);
    }

    /**
     * dScores = P ⊙ (dP − Σ P ⊙ dP) over one row, into the dP row. Outside [start, visible) P is 0, so
     * only the visible part is computed and the rest zeroed.
     */
    private static void softmaxBackwardRow(float[] buffers, int pOff, int dOff, int start, int visible, int rowLength) {
        int n = visible - start;
        int p0 = pOff + start;
        int d0 = dOff + start;
        FloatVector dots = FloatVector.broadcast(SPECIES, (float) VectorMath.dotRange(buffers, p0, buffers, d0, n));
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector p = FloatVector.fromArray(SPECIES, buffers, p0 + i);
            FloatVector.fromArray(SPECIES, buffers, d0 + i).sub(dots).mul(p).intoArray(buffers, d0 + i);
        }
        if (i < n) {
            VectorMask<Float> tail = SPECIES.indexInRange(i, n);
            FloatVector p = FloatVector.fromArray(SPECIES, buffers, p0 + i, tail);
            FloatVector.fromArray(SPECIES, buffers, d0 + i, tail).sub(dots).mul(p).intoArray(buffers, d0 + i, tail);
        }
        VectorMath.fill(buffers, dOff, start, 0f);
        VectorMath.fill(buffers, dOff + visible, rowLength - visible, 0f);
    }
}
