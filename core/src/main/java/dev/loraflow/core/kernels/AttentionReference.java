package dev.loraflow.core.kernels;

import java.util.Arrays;

/**
 * Plain double-precision loops with the same contracts as {@link Attention}: the ground truth the
 * float kernel is tested against. Scores are computed one query row at a time.
 */
public final class AttentionReference {

    private AttentionReference() {}

    /**
     * out = softmax(q·kᵀ/√D + causal mask)·v per (batch, head), and each score row's log-sum-exp.
     * q [B, T, H, D], k [B, T, Hkv, D], v [B, T, Hkv, D], out [B, T, H, D] written, logSumExp [B, H, T] written.
     */
    public static void forward(double[] q, int qOff, double[] k, int kOff, double[] v, int vOff,
                               double[] out, int outOff, double[] logSumExp, int lseOff,
                               int batch, int seqLen, int heads, int kvHeads, int headDim) {
        int queryElements = AttentionShapes.checkHeads(batch, seqLen, heads, kvHeads, headDim);
        int kvElements = AttentionShapes.elements(batch, seqLen, kvHeads, headDim);
        Bounds.check(q, qOff, queryElements, "q");
        Bounds.check(k, kOff, kvElements, "k");
        Bounds.check(v, vOff, kvElements, "v");
        Bounds.check(out, outOff, queryElements, "out");
        Bounds.check(logSumExp, lseOff, AttentionShapes.elements(batch, heads, seqLen, 1), "logSumExp");
        double[] probabilities = new double[seqLen];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                for (int t = 0; t < seqLen; t++) {
                    int qRow = qOff + index(b, t, h, 0, seqLen, heads, headDim);
                    double lse = probabilities(q, qRow, k, kOff, b, t, kvh, seqLen, kvHeads, headDim, probabilities);
                    logSumExp[lseOff + (b * heads + h) * seqLen + t] = lse;
                    int outRow = outOff + index(b, t, h, 0, seqLen, heads, headDim);
                    for (int d = 0; d < headDim; d++) {
                        double total = 0;
                        for (int j = 0; j <= t; j++) {
                            total += probabilities[j] * v[vOff + index(b, j, kvh, d, seqLen, kvHeads, headDim)];
                        }
                        out[outRow + d] = total;
                    }
                }
            }
        }
    }

    /**
     * dq, dk, dv of {@link #forward}, written (=); dk and dv sum over the query heads sharing a kv
     * head. dout [B, T, H, D], q [B, T, H, D], k [B, T, Hkv, D], v [B, T, Hkv, D], logSumExp [B, H, T]
     * from the forward, dq [B, T, H, D], dk [B, T, Hkv, D], dv [B, T, Hkv, D].
     */
    public static void backward(double[] dout, int doutOff, double[] q, int qOff, double[] k, int kOff,
                                double[] v, int vOff, double[] logSumExp, int lseOff,
                                double[] dq, int dqOff, double[] dk, int dkOff, double[] dv, int dvOff,
                                int batch, int seqLen, int heads, int kvHeads, int headDim) {
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
        Arrays.fill(dk, dkOff, dkOff + kvElements, 0);
        Arrays.fill(dv, dvOff, dvOff + kvElements, 0);
        double scale = 1 / Math.sqrt(headDim);
        double[] probabilities = new double[seqLen];
        double[] dScores = new double[seqLen];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                for (int t = 0; t < seqLen; t++) {
                    int qRow = qOff + index(b, t, h, 0, seqLen, heads, headDim);
                    int dRow = doutOff + index(b, t, h, 0, seqLen, heads, headDim);
                    probabilities(q, qRow, k, kOff, b, t, kvh, seqLen, kvHeads, headDim, probabilities);
                    double weightedDots = 0;
                    for (int j = 0; j <= t; j++) {
                        int vRow = vOff + index(b, j, kvh, 0, seqLen, kvHeads, headDim);
                        int dvRow = dvOff + index(b, j, kvh, 0, seqLen, kvHeads, headDim);
                        double dProbability = 0;
                        for (int d = 0; d < headDim; d++) {
                            dProbability += dout[dRow + d] * v[vRow + d];
                            dv[dvRow + d] += probabilities[j] * dout[dRow + d];
                        }
                        dScores[j] = dProbability;
                        weightedDots += probabilities[j] * dProbability;
                    }
                    int dqRow = dqOff + index(b, t, h, 0, seqLen, heads, headDim);
                    Arrays.fill(dq, dqRow, dqRow + headDim, 0);
                    for (int j = 0; j <= t; j++) {
                        double dScore = probabilities[j] * (dScores[j] - weightedDots) * scale;
                        int kRow = kOff + index(b, j, kvh, 0, seqLen, kvHeads, headDim);
                        int dkRow = dkOff + index(b, j, kvh, 0, seqLen, kvHeads, headDim);
                        for (int d = 0; d < headDim; d++) {
                            dq[dqRow + d] += dScore * k[kRow + d];
                            dk[dkRow + d] += dScore * q[qRow + d];
                        }
                    }
                }
            }
        }
    }

    /**
     * probabilities[0..t] = softmax over j ≤ t of q_t·k_j/√D for one query row; returns the log-sum-exp.
     * q row [D] at qRow, k [B, T, Hkv, D], probabilities [T] written in [0, t].
     */
    private static double probabilities(double[] q, int qRow, double[] k, int kOff, int b, int t, int kvh,
                                        int seqLen, int kvHeads, int headDim, double[] probabilities) {
        double scale = 1 / Math.sqrt(headDim);
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= t; j++) {
            int kRow = kOff + index(b, j, kvh, 0, seqLen, kvHeads, headDim);
            double score = 0;
            for (int d = 0; d < headDim; d++) {
                score += q[qRow + d] * k[kRow + d];
            }
            probabilities[j] = score * scale;
            max = Math.max(max, probabilities[j]);
        }
        double sum = 0;
        for (int j = 0; j <= t; j++) {
            probabilities[j] = Math.exp(probabilities[j] - max);
            sum += probabilities[j];
        }
        for (int j = 0; j <= t; j++) {
            probabilities[j] /= sum;
        }
        return max + Math.log(sum);
    }

    /** Index of element [b, t, head, d] of a [B, T, heads, D] tensor. */
    private static int index(int b, int t, int head, int d, int seqLen, int heads, int headDim) {
        return ((b * seqLen + t) * heads + head) * headDim + d;
    }
}
