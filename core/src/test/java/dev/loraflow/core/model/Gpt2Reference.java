package dev.loraflow.core.model;

import java.util.HashMap;
import java.util.Map;

/**
 * GPT-2 with LoRA written straight from Transformers' {@code GPT2LMHeadModel} in double precision,
 * one loop per formula and no kernels: the definition Gpt2Model is tested against.
 */
final class Gpt2Reference {

    /** One adapter: A [r, in], B [out, r], scaling s. */
    record Adapter(int rank, double[] a, double[] b, double scaling) {}

    private final Gpt2Config config;
    private final Map<String, double[]> weights;
    /** Canonical module path → adapter. */
    private final Map<String, Adapter> adapters;

    Gpt2Reference(Gpt2Config config, Map<String, double[]> weights, Map<String, Adapter> adapters) {
        this.config = config;
        this.weights = weights;
        this.adapters = new HashMap<>(adapters);
    }

    Map<String, Adapter> adapters() {
        return adapters;
    }

    /** Logits [batch·seqLen, vocab]. */
    double[] logits(int[] ids, int batch, int seqLen) {
        int e = config.hiddenSize();
        int rows = batch * seqLen;
        double[] wte = weights.get("wte.weight");
        double[] wpe = weights.get("wpe.weight");
        double[] x = new double[rows * e];
        for (int row = 0; row < rows; row++) {
            for (int i = 0; i < e; i++) {
                x[row * e + i] = wte[ids[row] * e + i] + wpe[(row % seqLen) * e + i];
            }
        }
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String p = "h." + layer + ".";
            double[] a = layerNorm(x, rows, p + "ln_1");
            double[] qkv = conv1d(a, rows, p + "attn.c_attn", e, 3 * e);
            double[] attn = attention(qkv, batch, seqLen);
            add(x, conv1d(attn, rows, p + "attn.c_proj", e, e));
            double[] m = layerNorm(x, rows, p + "ln_2");
            double[] f = conv1d(m, rows, p + "mlp.c_fc", e, config.innerSize());
            for (int i = 0; i < f.length; i++) {
                f[i] = geluNew(f[i]);
            }
            add(x, conv1d(f, rows, p + "mlp.c_proj", config.innerSize(), e));
        }
        double[] out = layerNorm(x, rows, "ln_f");
        int vocab = config.vocabSize();
        double[] logits = new double[rows * vocab];
        for (int row = 0; row < rows; row++) {
            for (int v = 0; v < vocab; v++) {
                double sum = 0;
                for (int i = 0; i < e; i++) {
                    sum += out[row * e + i] * wte[v * e + i];
                }
                logits[row * vocab + v] = sum;
            }
        }
        return logits;
    }

    /** HF's loss: logits[:, :-1] against labels[:, 1:], -100 ignored, mean over the rest. */
    double loss(int[] ids, int[] labels, int batch, int seqLen) {
        double[] logits = logits(ids, batch, seqLen);
        int vocab = config.vocabSize();
        double total = 0;
        int count = 0;
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t + 1 < seqLen; t++) {
                int target = labels[b * seqLen + t + 1];
                if (target == -100) {
                    continue;
                }
                int row = (b * seqLen + t) * vocab;
                double max = Double.NEGATIVE_INFINITY;
                for (int v = 0; v < vocab; v++) {
                    max = Math.max(max, logits[row + v]);
                }
                double sum = 0;
                for (int v = 0; v < vocab; v++) {
                    sum += Math.exp(logits[row + v] - max);
                }
                total += max + Math.log(sum) - logits[row + target];
                count++;
            }
        }
        return count == 0 ? 0 : total / count;
    }

    private double[] layerNorm(double[] x, int rows, String module) {
        int e = config.hiddenSize();
        double[] w = weights.get(module + ".weight");
        double[] bias = weights.get(module + ".bias");
        double[] y = new double[x.length];
        for (int row = 0; row < rows; row++) {
            double mean = 0;
            for (int i = 0; i < e; i++) {
                mean += x[row * e + i];
            }
            mean /= e;
            double variance = 0;
            for (int i = 0; i < e; i++) {
                double d = x[row * e + i] - mean;
                variance += d * d;
            }
            variance /= e;
            double rstd = 1 / Math.sqrt(variance + config.layerNormEpsilon());
            for (int i = 0; i < e; i++) {
                y[row * e + i] = (x[row * e + i] - mean) * rstd * w[i] + bias[i];
            }
        }
        return y;
    }

    /** HF's Conv1D: y = x·W + b with W stored [in, out], plus the adapter's s·B·A·x. */
    private double[] conv1d(double[] x, int rows, String module, int in, int out) {
        double[] w = weights.get(module + ".weight");
        double[] bias = weights.get(module + ".bias");
        Adapter adapter = adapters.get(module);
        double[] y = new double[rows * out];
        for (int row = 0; row < rows; row++) {
            double[] u = new double[adapter == null ? 0 : adapter.rank()];
            for (int k = 0; k < u.length; k++) {
                for (int i = 0; i < in; i++) {
                    u[k] += adapter.a()[k * in + i] * x[row * in + i];
                }
            }
            for (int o = 0; o < out; o++) {
                double sum = bias[o];
                for (int i = 0; i < in; i++) {
                    sum += x[row * in + i] * w[i * out + o];
                }
                for (int k = 0; k < u.length; k++) {
                    sum += adapter.scaling() * adapter.b()[o * adapter.rank() + k] * u[k];
                }
                y[row * out + o] = sum;
            }
        }
        return y;
    }

    /** Causal attention over qkv rows [q | k | v], heads contiguous D-wide slices of each. */
    private double[] attention(double[] qkv, int batch, int seqLen) {
        int e = config.hiddenSize();
        int heads = config.numHeads();
        int d = config.headDim();
        double[] out = new double[batch * seqLen * e];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int t = 0; t < seqLen; t++) {
                    int qRow = (b * seqLen + t) * 3 * e + h * d;
                    double[] scores = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        int kRow = (b * seqLen + j) * 3 * e + e + h * d;
                        double dot = 0;
                        for (int c = 0; c < d; c++) {
                            dot += qkv[qRow + c] * qkv[kRow + c];
                        }
                        scores[j] = dot / Math.sqrt(d);
                        max = Math.max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        scores[j] = Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        int vRow = (b * seqLen + j) * 3 * e + 2 * e + h * d;
                        for (int c = 0; c < d; c++) {
                            out[(b * seqLen + t) * e + h * d + c] += scores[j] / sum * qkv[vRow + c];
                        }
                    }
                }
            }
        }
        return out;
    }

    static double geluNew(double x) {
        return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    }

    private static void add(double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }
}
