package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.numericGradient;
import static dev.loraflow.core.kernels.KernelChecks.weightedSum;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The attention kernels with an {@link AttentionSpec}: another scale, Gemma 2's tanh soft-cap, a sliding
 * window — against a direct double-precision transcription of Transformers' eager attention (scores ·
 * scaling, c·tanh(s/c), the mask kv > q − window on top of causal, softmax, · v).
 */
class AttentionSpecTest {

    private static double[] transcription(double[] q, double[] k, double[] v, int batch, int seq, int heads, int kvHeads,
                                          int dim, double scale, double cap, int window) {
        double[] out = new double[batch * seq * heads * dim];
        int group = heads / kvHeads;
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / group;
                for (int i = 0; i < seq; i++) {
                    double[] scores = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        double s = 0;
                        for (int d = 0; d < dim; d++) {
                            s += q[((b * seq + i) * heads + h) * dim + d] * k[((b * seq + j) * kvHeads + kvh) * dim + d];
                        }
                        s *= scale;
                        s = cap > 0 ? Math.tanh(s / cap) * cap : s;
                        scores[j] = window > 0 && j <= i - window ? Double.NEGATIVE_INFINITY : s;
                        max = Math.max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) {
                        scores[j] = Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int j = 0; j <= i; j++) {
                        for (int d = 0; d < dim; d++) {
                            out[((b * seq + i) * heads + h) * dim + d] += scores[j] / sum
                                    * v[((b * seq + j) * kvHeads + kvh) * dim + d];
                        }
                    }
                }
            }
        }
        return out;
    }

    /** T = 70 crosses the kernel's 64-row blocks, so a window spans two blocks. */
    @ParameterizedTest(name = "T={0} window={1} cap={2} scale={3}")
    @CsvSource({"9, 4, 0, 0.5", "9, 0, 1.5, 0.5", "9, 3, 1.0, 0.8", "70, 20, 2.0, 0.35", "70, 0, 0, 0.35", "9, 9, 0, 0.5"})
    void forwardAndBackwardFollowTransformersEagerAttention(int seq, int window, float cap, float scale) {
        int batch = 2;
        int heads = 4;
        int kvHeads = 2;
        int dim = 4;
        AttentionSpec spec = new AttentionSpec(scale, cap, window);
        Random random = new Random(seq * 31L + window);
        float[] q = gaussian(random, batch * seq * heads * dim, 0, 1.5);
        float[] k = gaussian(random, batch * seq * kvHeads * dim, 0, 1.5);
        float[] v = gaussian(random, batch * seq * kvHeads * dim, 0, 1);
        float[] out = new float[q.length];
        float[] logSumExp = new float[batch * heads * seq];
        Attention.forward(q, 0, k, 0, v, 0, out, 0, logSumExp, 0, batch, seq, heads, kvHeads, dim, spec);
        double[] qd = widen(q);
        double[] kd = widen(k);
        double[] vd = widen(v);
        assertCloseToReference("out", transcription(qd, kd, vd, batch, seq, heads, kvHeads, dim, scale, cap, window), out);

        if (seq > 10) {
            return;  // finite differences over every input of the long case would take seconds
        }
        float[] g = gaussian(random, out.length, 0, 1);
        double[] gd = widen(g);
        float[] dq = new float[q.length];
        float[] dk = new float[k.length];
        float[] dv = new float[v.length];
        Attention.backward(g, 0, q, 0, k, 0, v, 0, logSumExp, 0, dq, 0, dk, 0, dv, 0, batch, seq, heads, kvHeads, dim, spec);
        // The float kernel's gradients against double central differences of the transcription: float precision.
        assertCloseToReference("dq", numericGradient(qd, () -> weightedSum(
                transcription(qd, kd, vd, batch, seq, heads, kvHeads, dim, scale, cap, window), gd)), dq);
        assertCloseToReference("dk", numericGradient(kd, () -> weightedSum(
                transcription(qd, kd, vd, batch, seq, heads, kvHeads, dim, scale, cap, window), gd)), dk);
        assertCloseToReference("dv", numericGradient(vd, () -> weightedSum(
                transcription(qd, kd, vd, batch, seq, heads, kvHeads, dim, scale, cap, window), gd)), dv);
    }

    /** Generation's kernel: a prefill of 5 rows, then one row at a time, as the transcription of the whole sequence. */
    @ParameterizedTest(name = "window={0} cap={1}")
    @CsvSource({"3, 0", "0, 1.5", "4, 2.0"})
    void cachedAttentionAppliesTheSameSpec(int window, float cap) {
        int seq = 11;
        int heads = 4;
        int kvHeads = 2;
        int dim = 4;
        float scale = 0.6f;
        AttentionSpec spec = new AttentionSpec(scale, cap, window);
        Random random = new Random(97 + window);
        float[] q = gaussian(random, seq * heads * dim, 0, 1.5);
        float[] k = gaussian(random, seq * kvHeads * dim, 0, 1.5);
        float[] v = gaussian(random, seq * kvHeads * dim, 0, 1);
        double[] expected = transcription(widen(q), widen(k), widen(v), 1, seq, heads, kvHeads, dim, scale, cap, window);

        float[] keys = new float[kvHeads * dim * seq];
        float[] values = new float[kvHeads * seq * dim];
        float[] scratch = new float[CachedAttention.scratchLength(heads, seq)];
        float[] out = new float[seq * heads * dim];
        int past = 0;
        for (int count : new int[] {5, 1, 1, 1, 1, 1, 1}) {
            CachedAttention.append(k, past * kvHeads * dim, v, past * kvHeads * dim, kvHeads * dim, count, keys, values,
                    seq, past, kvHeads, dim);
            CachedAttention.forward(q, past * heads * dim, heads * dim, count, keys, values, seq, past, out,
                    past * heads * dim, heads, kvHeads, dim, scratch, spec);
            past += count;
        }
        assertCloseToReference("cached out", expected, out);
    }

    @ParameterizedTest(name = "{0}, {1}, {2}")
    @CsvSource({"0, 0, 0", "-1, 0, 0", "1, -1, 0", "1, 0, -1", "NaN, 0, 0", "1, Infinity, 0"})
    void aSpecOutOfRangeIsRefused(float scale, float cap, int window) {
        assertThrows(IllegalArgumentException.class, () -> new AttentionSpec(scale, cap, window));
    }
}
