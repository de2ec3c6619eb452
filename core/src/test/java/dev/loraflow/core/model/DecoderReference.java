package dev.loraflow.core.model;

import dev.loraflow.core.lora.LoRALinear;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * A double-precision transcription of Transformers' modeling code of each decoder family, written from
 * that code and not from loraflow's model: one token at a time, plain loops, every adapter merged as
 * W0 + s·B·A. It shares nothing with {@link DecoderModel} but the config record and the weights.
 *
 * <ul>
 *   <li>LlamaRMSNorm: w·x/√(mean(x²) + eps); GemmaRMSNorm: (1 + w)·x/√(mean(x²) + eps).
 *   <li>Gemma: hidden = embeds · √hidden_size.
 *   <li>rotate_half RoPE with inverse frequencies from {@code _compute_default_rope_parameters},
 *       {@code _compute_linear_scaling_rope_parameters} and {@code _compute_llama3_parameters}.
 *   <li>eager attention: (q·kᵀ)·scaling, Gemma 2's tanh soft-cap, the causal mask narrowed by
 *       {@code sliding_window_overlay} (kv_idx > q_idx − window), softmax, repeat_kv.
 *   <li>Phi3Attention: qkv = qkv_proj(x), q = qkv[..., :H·D], k = next Hkv·D, v = the rest;
 *       Phi3MLP: gate, up = gate_up_proj(x).chunk(2), down(up · act(gate)).
 *   <li>Gemma2DecoderLayer: post_attention_layernorm on the attention output, pre_ and
 *       post_feedforward_layernorm around the MLP; final logits c·tanh(logits/c).
 * </ul>
 */
final class DecoderReference {

    private final DecoderConfig config;
    private final Map<String, float[]> weights;
    /** Canonical module path → merged weight [out][in]. */
    private final Map<String, double[][]> linears = new HashMap<>();

    DecoderReference(DecoderModel model, Map<String, float[]> weights) {
        this.config = model.config();
        this.weights = weights;
        ModelLayout layout = model.layout();
        for (int i = 0; i < layout.linearModules().size(); i++) {
            linears.put(layout.linearModules().get(i).path(), merged(model.linearModules().get(i)));
        }
    }

    /** W0 + s·B·A as [out][in]. */
    private static double[][] merged(LoRALinear linear) {
        int in = linear.inFeatures();
        int out = linear.outFeatures();
        int rank = linear.spec().rank();
        float[] a = linear.loraA().value();
        float[] b = linear.loraB().value();
        double[][] w = new double[out][in];
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                double delta = 0;
                for (int r = 0; r < rank; r++) {
                    delta += (double) b[o * rank + r] * a[r * in + i];
                }
                w[o][i] = linear.weight()[o * in + i] + linear.scaling() * delta;
            }
        }
        return w;
    }

    /** Inverse frequencies as modeling_rope_utils computes them, in double. */
    static double[] inverseFrequencies(DecoderConfig config) {
        int dim = config.headDim();
        double[] inv = new double[dim / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = 1.0 / Math.pow(config.ropeTheta(), (2.0 * i) / dim);
        }
        RopeScaling scaling = config.ropeScaling();
        if (scaling == null || scaling.type() == RopeScaling.Type.DYNAMIC) {
            return inv;
        }
        for (int i = 0; i < inv.length; i++) {
            if (scaling.type() == RopeScaling.Type.LINEAR) {
                inv[i] = inv[i] / scaling.factor();
                continue;
            }
            double old = scaling.originalMaxPositions();
            double lowWavelength = old / scaling.lowFreqFactor();
            double highWavelength = old / scaling.highFreqFactor();
            double wavelength = 2 * Math.PI / inv[i];
            double llama = wavelength > lowWavelength ? inv[i] / scaling.factor() : inv[i];
            double smooth = (old / wavelength - scaling.lowFreqFactor())
                    / (scaling.highFreqFactor() - scaling.lowFreqFactor());
            double smoothed = (1 - smooth) * llama / scaling.factor() + smooth * llama;
            boolean medium = !(wavelength < highWavelength) && !(wavelength > lowWavelength);
            inv[i] = medium ? smoothed : llama;
        }
        return inv;
    }

    /** The logits [T][V] of one sequence at positions 0..T−1. */
    double[][] logits(int[] tokens) {
        int seq = tokens.length;
        int hidden = config.hiddenSize();
        int headDim = config.headDim();
        int heads = config.numHeads();
        int kvHeads = config.numKeyValueHeads();
        int group = heads / kvHeads;
        boolean gemma = config.family() == DecoderConfig.Family.GEMMA || config.family() == DecoderConfig.Family.GEMMA2;
        boolean gemma2 = config.family() == DecoderConfig.Family.GEMMA2;
        boolean phi3 = config.family() == DecoderConfig.Family.PHI3;
        double[] inv = inverseFrequencies(config);
        double[][] x = new double[seq][hidden];
        for (int t = 0; t < seq; t++) {
            for (int i = 0; i < hidden; i++) {
                x[t][i] = weights.get("model.embed_tokens.weight")[tokens[t] * hidden + i]
                        * (gemma ? Math.sqrt(hidden) : 1);
            }
        }
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            double[][] q = new double[seq][];
            double[][] k = new double[seq][];
            double[][] v = new double[seq][];
            for (int t = 0; t < seq; t++) {
                double[] n = norm(x[t], prefix + "input_layernorm.weight");
                if (phi3) {
                    double[] qkv = linear(prefix + "self_attn.qkv_proj", n);
                    q[t] = Arrays.copyOfRange(qkv, 0, heads * headDim);
                    k[t] = Arrays.copyOfRange(qkv, heads * headDim, (heads + kvHeads) * headDim);
                    v[t] = Arrays.copyOfRange(qkv, (heads + kvHeads) * headDim, qkv.length);
                } else {
                    q[t] = linear(prefix + "self_attn.q_proj", n);
                    k[t] = linear(prefix + "self_attn.k_proj", n);
                    v[t] = linear(prefix + "self_attn.v_proj", n);
                }
                q[t] = rope(q[t], t, headDim, inv);
                k[t] = rope(k[t], t, headDim, inv);
            }
            double scaling = gemma2 ? Math.pow(config.queryPreAttnScalar(), -0.5) : Math.pow(headDim, -0.5);
            int window = config.slidingLayers().get(layer) ? config.slidingWindow() : 0;
            for (int t = 0; t < seq; t++) {
                double[] attention = new double[heads * headDim];
                for (int h = 0; h < heads; h++) {
                    int kvHead = h / group;
                    double[] scores = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        for (int d = 0; d < headDim; d++) {
                            scores[j] += q[t][h * headDim + d] * k[j][kvHead * headDim + d];
                        }
                        scores[j] *= scaling;
                        if (config.attnLogitSoftcap() > 0) {
                            scores[j] = Math.tanh(scores[j] / config.attnLogitSoftcap()) * config.attnLogitSoftcap();
                        }
                        boolean visible = window == 0 || j > t - window;
                        scores[j] = visible ? scores[j] : Double.NEGATIVE_INFINITY;
                        max = Math.max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        scores[j] = Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        for (int d = 0; d < headDim; d++) {
                            attention[h * headDim + d] += scores[j] / sum * v[j][kvHead * headDim + d];
                        }
                    }
                }
                double[] attentionOut = linear(prefix + "self_attn.o_proj", attention);
                if (gemma2) {
                    attentionOut = norm(attentionOut, prefix + "post_attention_layernorm.weight");
                }
                add(x[t], attentionOut);
                double[] m = norm(x[t], prefix + (gemma2 ? "pre_feedforward_layernorm.weight"
                        : "post_attention_layernorm.weight"));
                double[] gate;
                double[] up;
                if (phi3) {
                    double[] gateUp = linear(prefix + "mlp.gate_up_proj", m);
                    gate = Arrays.copyOfRange(gateUp, 0, gateUp.length / 2);
                    up = Arrays.copyOfRange(gateUp, gateUp.length / 2, gateUp.length);
                } else {
                    gate = linear(prefix + "mlp.gate_proj", m);
                    up = linear(prefix + "mlp.up_proj", m);
                }
                for (int i = 0; i < gate.length; i++) {
                    gate[i] = activation(gate[i]) * up[i];
                }
                double[] mlpOut = linear(prefix + "mlp.down_proj", gate);
                if (gemma2) {
                    mlpOut = norm(mlpOut, prefix + "post_feedforward_layernorm.weight");
                }
                add(x[t], mlpOut);
            }
        }
        double[][] logits = new double[seq][];
        for (int t = 0; t < seq; t++) {
            double[] normed = norm(x[t], "model.norm.weight");
            logits[t] = linear(ModelLayout.OUTPUT_HEAD, normed);
            if (config.finalLogitSoftcap() > 0) {
                double cap = config.finalLogitSoftcap();
                logits[t] = Arrays.stream(logits[t]).map(z -> Math.tanh(z / cap) * cap).toArray();
            }
        }
        return logits;
    }

    private double activation(double z) {
        return switch (config.activation()) {
            case SILU -> z / (1 + Math.exp(-z));
            case GELU_TANH -> 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z * z * z)));
        };
    }

    private double[] norm(double[] x, String weightName) {
        float[] weight = weights.get(weightName);
        boolean offset = config.family() == DecoderConfig.Family.GEMMA || config.family() == DecoderConfig.Family.GEMMA2;
        double meanSquare = Arrays.stream(x).map(value -> value * value).sum() / x.length;
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = (offset ? 1 + weight[i] : weight[i]) * x[i] / Math.sqrt(meanSquare + config.rmsNormEps());
        }
        return y;
    }

    /** y = W·x (+ b). */
    private double[] linear(String module, double[] x) {
        double[][] w = linears.get(module);
        float[] bias = weights.get(module + ".bias");
        double[] y = new double[w.length];
        for (int o = 0; o < w.length; o++) {
            y[o] = bias == null ? 0 : bias[o];
            for (int i = 0; i < x.length; i++) {
                y[o] += w[o][i] * x[i];
            }
        }
        return y;
    }

    /** x·cos + rotate_half(x)·sin per head, rotate_half(x) = (−x2, x1). */
    private static double[] rope(double[] x, int position, int headDim, double[] inv) {
        double[] y = x.clone();
        int half = headDim / 2;
        for (int head = 0; head < x.length; head += headDim) {
            for (int i = 0; i < half; i++) {
                double angle = position * inv[i];
                double x1 = x[head + i];
                double x2 = x[head + half + i];
                y[head + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
                y[head + half + i] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
            }
        }
        return y;
    }

    private static void add(double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }
}
