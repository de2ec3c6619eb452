package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.VectorMath.LANES;
import static dev.loraflow.core.kernels.VectorMath.SPECIES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Row softmax and the fused softmax + cross-entropy of a language-model head, float32, row-major.
 * Rows are independent and split over the cores when a call is large. Exponentials come from
 * {@link VectorMath#exp} (within 1 ulp of {@link Math#exp}) and lanes are summed by
 * {@link VectorMath#sumLanes}, so a result is the same bits before and after C2 compiles the kernel.
 *
 * <p>Every row is shifted by its maximum before exponentiation, so any finite logits work, ±3·10³⁸
 * included; a row must hold at least one value above −∞.
 */
public final class Softmax {

    /** Target of a row that takes no part in the loss, as PyTorch's {@code ignore_index} default. */
    public static final int IGNORE_INDEX = -100;

    /** Exponentials summed in float lanes before the partial sum moves to double. */
    private static final int SUM_BLOCK = 1024;

    private Softmax() {}

    /**
     * y = softmax(x) over each row. x [rows, cols], y [rows, cols]; y may be x at the same offset.
     */
    public static void softmaxForward(float[] x, int xOff, float[] y, int yOff, int rows, int cols) {
        int n = Bounds.elements(rows, cols);
        Bounds.check(x, xOff, n, "x");
        Bounds.check(y, yOff, n, "y");
        VectorMath.forRows(rows, cols, (from, to) -> {
            for (int r = from; r < to; r++) {
                int xRow = xOff + r * cols;
                int yRow = yOff + r * cols;
                float max = VectorMath.maxRange(x, xRow, cols);
                double sum = expShiftedIntoAndSum(x, xRow, max, y, yRow, cols);
                VectorMath.scaleRange((float) (1.0 / sum), y, yRow, cols);
            }
        });
    }

    /**
     * dx = y ⊙ (dy − Σ dy ⊙ y) over each row, written (=). dy [rows, cols], y [rows, cols] (forward
     * output), dx [rows, cols]; dx may be dy or y at the same offset.
     */
    public static void softmaxBackward(float[] dy, int dyOff, float[] y, int yOff, float[] dx, int dxOff,
                                       int rows, int cols) {
        int n = Bounds.elements(rows, cols);
        Bounds.check(dy, dyOff, n, "dy");
        Bounds.check(y, yOff, n, "y");
        Bounds.check(dx, dxOff, n, "dx");
        VectorMath.forRows(rows, cols, (from, to) -> {
            for (int r = from; r < to; r++) {
                int dyRow = dyOff + r * cols;
                int yRow = yOff + r * cols;
                int dxRow = dxOff + r * cols;
                FloatVector dots = FloatVector.broadcast(SPECIES, (float) VectorMath.dotRange(dy, dyRow, y, yRow, cols));
                int i = 0;
                for (int bound = SPECIES.loopBound(cols); i < bound; i += LANES) {
                    FloatVector yv = FloatVector.fromArray(SPECIES, y, yRow + i);
                    FloatVector.fromArray(SPECIES, dy, dyRow + i).sub(dots).mul(yv).intoArray(dx, dxRow + i);
                }
                if (i < cols) {
                    VectorMask<Float> tail = SPECIES.indexInRange(i, cols);
                    FloatVector yv = FloatVector.fromArray(SPECIES, y, yRow + i, tail);
                    FloatVector.fromArray(SPECIES, dy, dyRow + i, tail).sub(dots).mul(yv).intoArray(dx, dxRow + i, tail);
                }
            }
        });
    }

    /**
     * Mean cross-entropy −log softmax(logits)[target] over the rows whose target is not
     * {@link #IGNORE_INDEX}; 0 when every row is ignored. Also saves, per row, the log-sum-exp the
     * backward needs (0 for ignored rows), so no [rows, vocab] probability buffer is kept.
     *
     * @param logits    [rows, vocab]
     * @param targets   [rows], each in [0, vocab) or {@link #IGNORE_INDEX}
     * @param logSumExp [rows], written: log Σ exp(logits row)
     * @return the mean loss over counted rows
     */
    public static double crossEntropyForward(float[] logits, int logitsOff, int[] targets, int targetsOff,
                                             float[] logSumExp, int lseOff, int rows, int vocab) {
        int n = Bounds.elements(rows, vocab);
        Bounds.check(logits, logitsOff, n, "logits");
        Bounds.check(logSumExp, lseOff, rows, "logSumExp");
        int count = countTargets(targets, targetsOff, rows, vocab);
        VectorMath.forRows(rows, vocab, (from, to) -> {
            for (int r = from; r < to; r++) {
                if (targets[targetsOff + r] == IGNORE_INDEX) {
                    logSumExp[lseOff + r] = 0f;
                    continue;
                }
                int row = logitsOff + r * vocab;
                float max = VectorMath.maxRange(logits, row, vocab);
                logSumExp[lseOff + r] = (float) (max + Math.log(sumExpShifted(logits, row, max, vocab)));
            }
        });
        if (count == 0) {
            return 0;
        }
        double total = 0;
        for (int r = 0; r < rows; r++) {
            int target = targets[targetsOff + r];
            if (target != IGNORE_INDEX) {
                total += (double) logSumExp[lseOff + r] - logits[logitsOff + r * vocab + target];
            }
        }
        return total / count;
    }

    /**
     * dlogits = dLoss·(softmax(logits) − onehot(target)) / count, written (=), where count is the
     * number of rows not ignored; ignored rows get 0, and with every row ignored all of dlogits is 0.
     * dLoss is the upstream gradient of the mean loss (1 for a plain step, 1/k when averaging k
     * micro-batches).
     *
     * @param logits    [rows, vocab]
     * @param targets   [rows], each in [0, vocab) or {@link #IGNORE_INDEX}
     * @param logSumExp [rows], as saved by {@link #crossEntropyForward}
     * @param dlogits   [rows, vocab], written; may be logits at the same offset, which saves a
     *                  [rows, vocab] buffer
     */
    public static void crossEntropyBackward(float[] logits, int logitsOff, int[] targets, int targetsOff,
                                            float[] logSumExp, int lseOff, float dLoss,
                                            float[] dlogits, int dOff, int rows, int vocab) {
        int n = Bounds.elements(rows, vocab);
        Bounds.check(logits, logitsOff, n, "logits");
        Bounds.check(logSumExp, lseOff, rows, "logSumExp");
        Bounds.check(dlogits, dOff, n, "dlogits");
        int count = countTargets(targets, targetsOff, rows, vocab);
        float rowScale = count == 0 ? 0f : dLoss / count;
        VectorMath.forRows(rows, vocab, (from, to) -> {
            for (int r = from; r < to; r++) {
                int target = targets[targetsOff + r];
                int dRow = dOff + r * vocab;
                if (target == IGNORE_INDEX) {
                    VectorMath.fill(dlogits, dRow, vocab, 0f);
                    continue;
                }
                int row = logitsOff + r * vocab;
                scaledSoftmaxFromLogSumExp(logits, row, logSumExp[lseOff + r], rowScale, dlogits, dRow, vocab);
                dlogits[dRow + target] -= rowScale;
            }
        });
    }

    private static int countTargets(int[] targets, int targetsOff, int rows, int vocab) {
        Bounds.check(targets, targetsOff, rows, "targets");
        int count = 0;
        for (int r = 0; r < rows; r++) {
            int target = targets[targetsOff + r];
            if (target == IGNORE_INDEX) {
                continue;
            }
            if (target < 0 || target >= vocab) {
                throw new IllegalArgumentException("target " + target + " of row " + r + " outside [0, " + vocab + ")");
            }
            count++;
        }
        return count;
    }

    /** y = exp(x − shift), returning Σ y. */
    private static double expShiftedIntoAndSum(float[] x, int xOff, float shift, float[] y, int yOff, int n) {
        FloatVector shifts = FloatVector.broadcast(SPECIES, shift);
        double total = 0;
        for (int block = 0; block < n; block += SUM_BLOCK) {
            int end = Math.min(n, block + SUM_BLOCK);
            FloatVector acc = FloatVector.zero(SPECIES);
            int i = block;
            for (int bound = end - LANES; i <= bound; i += LANES) {
                FloatVector e = VectorMath.exp(FloatVector.fromArray(SPECIES, x, xOff + i).sub(shifts));
                e.intoArray(y, yOff + i);
                acc = acc.add(e);
            }
            if (i < end) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, end);
                FloatVector e = VectorMath.exp(FloatVector.fromArray(SPECIES, x, xOff + i, tail).sub(shifts));
                e.intoArray(y, yOff + i, tail);
                acc = acc.add(e, tail);
            }
            total += VectorMath.sumLanes(acc);
        }
        return total;
    }

    /** Σ exp(x − shift). */
    private static double sumExpShifted(float[] x, int xOff, float shift, int n) {
        FloatVector shifts = FloatVector.broadcast(SPECIES, shift);
        double total = 0;
        for (int block = 0; block < n; block += SUM_BLOCK) {
            int end = Math.min(n, block + SUM_BLOCK);
            // One accumulator, one exp in the loop: the add's latency hides behind the exp's, and a
            // second call site would push exp past C2's inlining budget, boxing every vector.
            FloatVector acc = FloatVector.zero(SPECIES);
            int i = block;
            for (int bound = end - LANES; i <= bound; i += LANES) {
                acc = acc.add(VectorMath.exp(FloatVector.fromArray(SPECIES, x, xOff + i).sub(shifts)));
            }
            if (i < end) {
                VectorMask<Float> inRange = SPECIES.indexInRange(i, end);
                acc = acc.add(VectorMath.exp(FloatVector.fromArray(SPECIES, x, xOff + i, inRange).sub(shifts)), inRange);
            }
            total += VectorMath.sumLanes(acc);
        }
        return total;
    }

    /** out = scale·exp(x − logSumExp), i.e. scale·softmax(x). */
    private static void scaledSoftmaxFromLogSumExp(float[] x, int xOff, float logSumExp, float scale,
                                                   float[] out, int outOff, int n) {
        FloatVector shifts = FloatVector.broadcast(SPECIES, logSumExp);
        FloatVector scales = FloatVector.broadcast(SPECIES, scale);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            VectorMath.exp(FloatVector.fromArray(SPECIES, x, xOff + i).sub(shifts)).mul(scales)
                    .intoArray(out, outOff + i);
        }
        if (i < n) {
            VectorMask<Float> tail = SPECIES.indexInRange(i, n);
            VectorMath.exp(FloatVector.fromArray(SPECIES, x, xOff + i, tail).sub(shifts)).mul(scales)
                    .intoArray(out, outOff + i, tail);
        }
    }
}
