package dev.loraflow.core.model;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.PythonJson;

/**
 * A Llama ({@code LlamaForCausalLM}) configuration: RMSNorm, RoPE without scaling, SiLU-gated MLP,
 * grouped-query attention, no biases.
 *
 * @param vocabSize {@code vocab_size}
 * @param hiddenSize {@code hidden_size}
 * @param intermediateSize {@code intermediate_size}, the gated MLP width
 * @param numLayers {@code num_hidden_layers}
 * @param numHeads {@code num_attention_heads}
 * @param numKeyValueHeads {@code num_key_value_heads}; equal to numHeads without grouped-query attention
 * @param headDim {@code head_dim}; HF's default is hidden_size / num_attention_heads
 * @param maxPositions {@code max_position_embeddings}
 * @param rmsNormEps {@code rms_norm_eps}
 * @param ropeTheta {@code rope_theta}
 * @param tieWordEmbeddings {@code tie_word_embeddings}
 */
public record LlamaConfig(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKeyValueHeads,
        int headDim,
        int maxPositions,
        double rmsNormEps,
        double ropeTheta,
        boolean tieWordEmbeddings) implements ModelConfig {

    public static final String MODEL_TYPE = "llama";
    public static final String ARCHITECTURE = "LlamaForCausalLM";
    public static final String ACTIVATION = "silu";
    public static final double DEFAULT_RMS_NORM_EPS = 1e-6;
    public static final double DEFAULT_ROPE_THETA = 10000;

    public LlamaConfig {
        ConfigFields.requirePositive("vocab_size", vocabSize);
        ConfigFields.requirePositive("hidden_size", hiddenSize);
        ConfigFields.requirePositive("intermediate_size", intermediateSize);
        ConfigFields.requirePositive("num_hidden_layers", numLayers);
        ConfigFields.requirePositive("num_attention_heads", numHeads);
        ConfigFields.requirePositive("num_key_value_heads", numKeyValueHeads);
        ConfigFields.requirePositive("head_dim", headDim);
        ConfigFields.requirePositive("max_position_embeddings", maxPositions);
        if (numHeads % numKeyValueHeads != 0) {
            throw new ModelConfigException("'num_key_value_heads' (" + numKeyValueHeads
                    + ") must divide 'num_attention_heads' (" + numHeads + ")");
        }
        // RoPE rotates the two halves of each head against each other.
        if (headDim % 2 != 0) {
            throw new ModelConfigException("'head_dim' must be even for rotary embeddings, found " + headDim);
        }
        if (!(rmsNormEps > 0) || !Double.isFinite(rmsNormEps)) {
            throw new ModelConfigException("'rms_norm_eps' must be a positive number, found " + rmsNormEps);
        }
        if (!(ropeTheta > 0) || !Double.isFinite(ropeTheta)) {
            throw new ModelConfigException("'rope_theta' must be a positive number, found " + ropeTheta);
        }
    }

    static LlamaConfig fromFields(ConfigFields fields) {
        String activation = fields.string("hidden_act", ACTIVATION);
        if (!activation.equals(ACTIVATION)) {
            throw fields.error("hidden_act \"" + activation + "\" is not supported; Llama models must use \""
                    + ACTIVATION + "\"");
        }
        for (String biasKey : new String[] {"attention_bias", "mlp_bias"}) {
            if (fields.bool(biasKey, false)) {
                throw fields.error(biasKey + " is true; Llama projections with a bias are not supported");
            }
        }
        if (fields.has("rope_scaling")) {
            throw fields.error("rope_scaling " + fields.raw("rope_scaling")
                    + " is not supported; only plain RoPE (rope_scaling null) is implemented");
        }
        int hiddenSize = fields.requiredPositiveInt("hidden_size");
        int numHeads = fields.requiredPositiveInt("num_attention_heads");
        if (!fields.has("head_dim") && hiddenSize % numHeads != 0) {
            throw fields.error("'num_attention_heads' (" + numHeads + ") must divide 'hidden_size' (" + hiddenSize
                    + ") when 'head_dim' is not given");
        }
        int vocabSize = fields.requiredPositiveInt("vocab_size");
        int intermediateSize = fields.requiredPositiveInt("intermediate_size");
        int numLayers = fields.requiredPositiveInt("num_hidden_layers");
        int numKeyValueHeads = fields.positiveInt("num_key_value_heads", numHeads);
        int headDim = fields.positiveInt("head_dim", hiddenSize / numHeads);
        int maxPositions = fields.requiredPositiveInt("max_position_embeddings");
        double rmsNormEps = fields.positiveNumber("rms_norm_eps", DEFAULT_RMS_NORM_EPS);
        double ropeTheta = fields.positiveNumber("rope_theta", DEFAULT_ROPE_THETA);
        boolean tieWordEmbeddings = fields.bool("tie_word_embeddings", false);
        try {
            return new LlamaConfig(vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads,
                    headDim, maxPositions, rmsNormEps, ropeTheta, tieWordEmbeddings);
        } catch (ModelConfigException e) {
            throw fields.error(e.getMessage());
        }
    }

    @Override
    public String modelType() {
        return MODEL_TYPE;
    }

    @Override
    public String toJson() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        root.putArray("architectures").add(ARCHITECTURE);
        root.put("model_type", MODEL_TYPE);
        root.put("vocab_size", vocabSize);
        root.put("hidden_size", hiddenSize);
        root.put("intermediate_size", intermediateSize);
        root.put("num_hidden_layers", numLayers);
        root.put("num_attention_heads", numHeads);
        root.put("num_key_value_heads", numKeyValueHeads);
        root.put("head_dim", headDim);
        root.put("max_position_embeddings", maxPositions);
        root.put("rms_norm_eps", rmsNormEps);
        root.put("rope_theta", ropeTheta);
        root.putNull("rope_scaling");
        root.put("hidden_act", ACTIVATION);
        root.put("attention_bias", false);
        root.put("mlp_bias", false);
        root.put("tie_word_embeddings", tieWordEmbeddings);
        return PythonJson.dumps(root) + "\n";
    }
}
