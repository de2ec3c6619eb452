package dev.loraflow.export.onnx;

import dev.loraflow.core.kernels.RopeTable;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.LlamaConfig;
import dev.loraflow.export.onnx.OnnxGraph.Attribute;
import java.util.List;
import java.util.Map;

/**
 * The ONNX graph of each architecture, block for block the computation of {@code Gpt2Model} and
 * {@code LlamaModel}, over the tensor and module names of {@code ModelLayout}; the export tests run
 * both on the same tokens and hold their logits equal.
 */
final class CausalLmGraphs {

    private CausalLmGraphs() {}

    /**
     * @param weights  the base weights by canonical name
     * @param unmerged adapted modules get LoRA inputs; otherwise the model's adapters must be merged
     */
    static DecoderGraph build(CausalLanguageModel model, Map<String, float[]> weights, int opset, boolean unmerged) {
        return switch (model.config()) {
            case Gpt2Config gpt2 -> gpt2(model, gpt2, weights, opset, unmerged);
            case LlamaConfig llama -> llama(model, llama, weights, opset, unmerged);
        };
    }

    /** Learned positions, pre-LayerNorm blocks with a fused c_attn, gelu_new, the head tied to wte. */
    private static DecoderGraph gpt2(CausalLanguageModel model, Gpt2Config config, Map<String, float[]> weights,
                                     int opset, boolean unmerged) {
        DecoderGraph g = new DecoderGraph(model, weights, opset, config.numHeads(), unmerged);
        OnnxGraph graph = g.graph;
        float eps = (float) config.layerNormEpsilon();
        long embd = config.hiddenSize();
        String wte = g.weight("wte.weight");
        String x = graph.node("Add", graph.node("Gather", wte, GraphNames.INPUT_IDS),
                graph.node("Gather", g.weight("wpe.weight"), GraphNames.POSITION_IDS));
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

    /** RMSNorm, RoPE (halves layout) from core's table, grouped-query attention, SwiGLU, head tied or not. */
    private static DecoderGraph llama(CausalLanguageModel model, LlamaConfig config, Map<String, float[]> weights,
                                      int opset, boolean unmerged) {
        DecoderGraph g = new DecoderGraph(model, weights, opset, config.numKeyValueHeads(), unmerged);
        OnnxGraph graph = g.graph;
        double eps = config.rmsNormEps();
        String embedding = g.weight("model.embed_tokens.weight");
        String x = graph.node("Gather", embedding, GraphNames.INPUT_IDS);
        DecoderGraph.Rotary rotary = g.rotary(RopeTable.create(config.maxPositions(), config.headDim(), config.ropeTheta()));
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            String normed = g.rmsNorm(x, prefix + "input_layernorm.weight", eps);
            String attention = g.attention(layer, g.linear(normed, prefix + "self_attn.q_proj"),
                    g.linear(normed, prefix + "self_attn.k_proj"), g.linear(normed, prefix + "self_attn.v_proj"), rotary);
            x = graph.node("Add", x, g.linear(attention, prefix + "self_attn.o_proj"));
            String mlpInput = g.rmsNorm(x, prefix + "post_attention_layernorm.weight", eps);
            String gated = g.swiglu(g.linear(mlpInput, prefix + "mlp.gate_proj"), g.linear(mlpInput, prefix + "mlp.up_proj"));
            x = graph.node("Add", x, g.linear(gated, prefix + "mlp.down_proj"));
        }
        g.outputHead(g.rmsNorm(x, "model.norm.weight", eps), config.tieWordEmbeddings() ? embedding : null);
        return g;
    }
}
