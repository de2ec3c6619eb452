package dev.loraflow.core.kernels;

/**
 * Plain double-precision loops with the same contracts as {@link Softmax}: the ground truth the
 * vectorized float kernels are tested against.
 */
public final class SoftmaxReference {

    private SoftmaxReference() {}

    /** y = softmax(x) over each row. x [rows, cols], y [rows, cols]. */
    public static void softmaxForward(double[] x, int xOff, double[] y, int yOff, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            int xRow = xOff + r * cols;
            int yRow = yOff + r * cols;
            double max = VectorMathReference.max(x, xRow, cols);
            double sum = 0;
            for (int i = 0; i < cols; i++) {
                y[yRow + i] = Math.exp(x[xRow + i] - max);
                sum += y[yRow + i];
            }
            for (int i = 0; i < cols; i++) {
                y[yRow + i] /= sum;
            }
        }
    }

    /** dx = y ⊙ (dy − Σ dy ⊙ y) over each row, written (=). dy, y, dx [rows, cols]. */
    public static void softmaxBackward(double[] dy, int dyOff, double[] y, int yOff, double[] dx, int dxOff,
                                       int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            double dot = VectorMathReference.dot(dy, dyOff + r * cols, y, yOff + r * cols, cols);
            for (int i = 0; i < cols; i++) {
                dx[dxOff + r * cols + i] = y[yOff + r * cols + i] * (dy[dyOff + r * cols + i] - dot);
            }
        }
    }

    /**
     * Mean cross-entropy over rows whose target is not {@link Softmax#IGNORE_INDEX}, 0 when none.
     * logits [rows, vocab], targets [rows], logSumExp [rows] written (0 for ignored rows).
     */
    public static double crossEntropyForward(double[] logits, int logitsOff, int[] targets, int targetsOff,
                                             double[] logSumExp, int lseOff, int rows, int vocab) {
        double total = 0;
        int count = 0;
        for (int r = 0; r < rows; r++) {
            int target = targets[targetsOff + r];
            if (target == Softmax.IGNORE_INDEX) {
                logSumExp[lseOff + r] = 0;
                continue;
            }
            int row = logitsOff + r * vocab;
            double max = VectorMathReference.max(logits, row, vocab);
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                sum += Math.exp(logits[row + i] - max);
            }
            logSumExp[lseOff + r] = max + Math.log(sum);
            total += logSumExp[lseOff + r] - logits[row + target];
            count++;
        }
        return count == 0 ? 0 : total / count;
    }

    /**
     * dlogits = dLoss·(softmax − onehot)/count, written (=), 0 on ignored rows. logits [rows, vocab],
     * targets [rows], logSumExp [rows] from the forward, dlogits [rows, vocab].
     */
    public static void crossEntropyBackward(double[] logits, int logitsOff, int[] targets, int targetsOff,
                                            double[] logSumExp, int lseOff, double dLoss,
                                            double[] dlogits, int dOff, int rows, int vocab) {
        int count = 0;
        for (int r = 0; r < rows; r++) {
            if (targets[targetsOff + r] != Softmax.IGNORE_INDEX) {
                count++;
            }
        }
        for (int r = 0; r < rows; r++) {
            int target = targets[targetsOff + r];
            for (int i = 0; i < vocab; i++) {
                int index = r * vocab + i;
                if (target == Softmax.IGNORE_INDEX) {
                    dlogits[dOff + index] = 0;
                } else {
                    double p = Math.exp(logits[logitsOff + index] - logSumExp[lseOff + r]);
                    dlogits[dOff + index] = dLoss * (p - (i == target ? 1 : 0)) / count;
                }
            }
        }
    }
}
