package dev.loraflow.onnx;

import dev.loraflow.core.kernels.AttentionSpec;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.RopeTable;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.onnx.OnnxGraph.Attribute;
import java.util.List;
import java.util.Map;

/**
 * The ONNX graph of each architecture, block for block the computation of {@code Gpt2Model} and
 * {@code DecoderModel} (every RoPE decoder family), over the tensor and module names of {@code ModelLayout}; the export tests run
 * both on the same tokens and hold their logits equal.
 */
final class CausalLmGraphs {

    private CausalLmGraphs() {}

    /**
     * @param weights  the base weights by canonical name
     * @param frozen   the base weights held as frozen matrices, by canonical name
     * @param unmerged adapted modules get LoRA inputs; otherwise their weights are written merged
     * @param quantization how the linear weights (and optionally the embeddings) are stored
     */
    static DecoderGraph build(CausalLanguageModel model, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen,
                              int opset, boolean unmerged, WeightQuantization quantization) {
        return switch (model.config()) {
            case Gpt2Config gpt2 -> gpt2(model, gpt2, weights, frozen, opset, unmerged, quantization);
            case DecoderConfig decoder -> decoder(model, decoder, weights, frozen, opset, unmerged, quantization);
        };
    }

    /** Learned positions, pre-LayerNorm blocks with a fused c_attn, gelu_new, the head tied to wte. */
    private static DecoderGraph gpt2(CausalLanguageModel model, Gpt2Config config, Map<String, float[]> weights,
                                     Map<String, FrozenMatrix> frozen, int opset, boolean unmerged,
                                     WeightQuantization quantization) {
        DecoderGraph g = new DecoderGraph(model, weights, frozen, opset, config.numHeads(), unmerged, quantization);
        OnnxGraph graph = g.graph;
        float eps = (float) config.layerNormEpsilon();
        long embd = config.hiddenSize();
        String wte = "wte.weight";
        String x = graph.node("Add", g.embed(wte), graph.node("Gather", g.weight("wpe.weight"), GraphNames.POSITION_IDS));
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "h." + layer + ".";
            String qkv = g.linear(g.layerNorm(x, prefix + "ln_1", eps), prefix + "attn.c_attn");
            List<String> split = graph.nodeWithOutputs("Split", 3, List.of(qkv, graph.ints(embd, embd, embd)),
                    Attribute.of("axis", 2));
            String attention = g.attention(layer, split.get(0), split.get(1), split.get(2), null);
            x = graph.node("Add", x, g.linear(attention, prefix + "attn.c_proj"));
            String fc = g.linear(g.layerNorm(x, prefix + "ln_2", eps), prefix + "mlp.c_fc");
            x = graph.node("Add", x, g.linear(g.geluTanh(fc), prefix + "mlp.c_proj"));
        }
        g.outputHead(g.layerNorm(x, "ln_f", eps), wte);
        return g;
    }

    /**
     * The RoPE decoder families: RMSNorm (by 1 + w for Gemma), RoPE (halves layout, scaled) from core's
     * table, grouped-query attention with each layer's scale, soft-cap and window, the gated MLP; Phi-3's
     * fused projections split as the Java model splits them, Gemma 2's branch norms, the head tied or not.
     */
    private static DecoderGraph decoder(CausalLanguageModel model, DecoderConfig config, Map<String, float[]> weights,
                                        Map<String, FrozenMatrix> frozen, int opset, boolean unmerged,
                                        WeightQuantization quantization) {
        DecoderGraph g = new DecoderGraph(model, weights, frozen, opset, config.numKeyValueHeads(), unmerged,
                quantization);
        OnnxGraph graph = g.graph;
        double eps = config.rmsNormEps();
        boolean offset = config.family().normWeightOffsetByOne();
        boolean sandwich = config.family().sandwichNorms();
        long queryWidth = (long) config.numHeads() * config.headDim();
        long keyValueWidth = (long) config.numKeyValueHeads() * config.headDim();
        long inner = config.intermediateSize();
        String embedding = "model.embed_tokens.weight";
        String x = g.embed(embedding);
        if (config.family().scalesEmbeddings()) {
            x = graph.node("Mul", x, g.constant((float) Math.sqrt(config.hiddenSize())));
        }
        DecoderGraph.Rotary rotary = g.rotary(
                RopeTable.create(config.maxPositions(), config.ropeTheta(), config.ropeInverseFrequencies()));
        // Each residual Add is fused with the RMSNorm that reads its sum: the next block's input norm, or the final one.
        String normed = g.rmsNorm(x, "model.layers.0.input_layernorm.weight", eps, offset);
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            List<String> qkv;
            if (config.family().fusedProjections()) {
                qkv = graph.nodeWithOutputs("Split", 3, List.of(g.linear(normed, prefix + "self_attn.qkv_proj"),
                        graph.ints(queryWidth, keyValueWidth, keyValueWidth)), Attribute.of("axis", 2));
            } else {
                qkv = g.linears(normed, List.of(prefix + "self_attn.q_proj", prefix + "self_attn.k_proj",
                        prefix + "self_attn.v_proj"));
            }
            AttentionSpec spec = new AttentionSpec(config.attentionScale(), (float) config.attnLogitSoftcap(),
                    config.slidingWindow(layer));
            String attention = g.attention(layer, qkv.get(0), qkv.get(1), qkv.get(2), rotary, spec);
            String attentionBranch = g.linear(attention, prefix + "self_attn.o_proj");
            if (sandwich) {
                attentionBranch = g.rmsNorm(attentionBranch, prefix + "post_attention_layernorm.weight", eps, offset);
            }
            DecoderGraph.Residual afterAttention = g.addRmsNorm(x, attentionBranch,
                    prefix + (sandwich ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"), eps, offset);
            x = afterAttention.sum();
            String mlpInput = afterAttention.normed();
            List<String> gateUp;
            if (config.family().fusedProjections()) {
                gateUp = graph.nodeWithOutputs("Split", 2, List.of(g.linear(mlpInput, prefix + "mlp.gate_up_proj"),
                        graph.ints(inner, inner)), Attribute.of("axis", 2));
            } else {
                gateUp = g.linears(mlpInput, List.of(prefix + "mlp.gate_proj", prefix + "mlp.up_proj"));
            }
            String gated = switch (config.activation()) {
                case SILU -> g.swiglu(gateUp.get(0), gateUp.get(1));
                case GELU_TANH -> graph.node("Mul", g.geluTanh(gateUp.get(0)), gateUp.get(1));
            };
            String mlpBranch = g.linear(gated, prefix + "mlp.down_proj");
            if (sandwich) {
                mlpBranch = g.rmsNorm(mlpBranch, prefix + "post_feedforward_layernorm.weight", eps, offset);
            }
            DecoderGraph.Residual afterMlp = g.addRmsNorm(x, mlpBranch, layer + 1 < config.numLayers()
                    ? "model.layers." + (layer + 1) + ".input_layernorm.weight" : "model.norm.weight", eps, offset);
            x = afterMlp.sum();
            normed = afterMlp.normed();
        }
        g.outputHead(normed, config.tieWordEmbeddings() ? embedding : null, (float) config.finalLogitSoftcap());
        return g;
    }
}
