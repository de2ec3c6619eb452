package dev.loraflow.core.model;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.PythonJson;

/**
 * A GPT-2 ({@code GPT2LMHeadModel}) configuration. Only the tanh-approximated GELU and a tied output
 * head are supported, which is what every released GPT-2 checkpoint uses.
 *
 * @param vocabSize {@code vocab_size}
 * @param maxPositions {@code n_positions}, rows of the learned position embedding
 * @param hiddenSize {@code n_embd}
 * @param numLayers {@code n_layer}
 * @param numHeads {@code n_head}
 * @param innerSize {@code n_inner}, the MLP width; HF's null means 4·n_embd
 * @param layerNormEpsilon {@code layer_norm_epsilon}
 */
public record Gpt2Config(
        int vocabSize,
        int maxPositions,
        int hiddenSize,
        int numLayers,
        int numHeads,
        int innerSize,
        double layerNormEpsilon) implements ModelConfig {

    public static final String MODEL_TYPE = "gpt2";
    public static final String ARCHITECTURE = "GPT2LMHeadModel";
    public static final String ACTIVATION = "gelu_new";
    public static final double DEFAULT_LAYER_NORM_EPSILON = 1e-5;

    public Gpt2Config {
        ConfigFields.requirePositive("vocab_size", vocabSize);
        ConfigFields.requirePositive("n_positions", maxPositions);
        ConfigFields.requirePositive("n_embd", hiddenSize);
        ConfigFields.requirePositive("n_layer", numLayers);
        ConfigFields.requirePositive("n_head", numHeads);
        ConfigFields.requirePositive("n_inner", innerSize);
        if (hiddenSize % numHeads != 0) {
            throw new ModelConfigException("'n_head' (" + numHeads + ") must divide 'n_embd' (" + hiddenSize + ")");
        }
        if (!(layerNormEpsilon > 0) || !Double.isFinite(layerNormEpsilon)) {
            throw new ModelConfigException("'layer_norm_epsilon' must be a positive number, found " + layerNormEpsilon);
        }
    }

    /** A config with HF's defaults for the MLP width (4·n_embd) and layer-norm epsilon. */
    public static Gpt2Config of(int vocabSize, int maxPositions, int hiddenSize, int numLayers, int numHeads) {
        return new Gpt2Config(vocabSize, maxPositions, hiddenSize, numLayers, numHeads, 4 * hiddenSize,
                DEFAULT_LAYER_NORM_EPSILON);
    }

    static Gpt2Config fromFields(ConfigFields fields) {
        String activation = fields.string("activation_function", ACTIVATION);
        if (!activation.equals(ACTIVATION)) {
            throw fields.error("activation_function \"" + activation + "\" is not supported; GPT-2 models must use \""
                    + ACTIVATION + "\"");
        }
        if (!fields.bool("tie_word_embeddings", true)) {
            throw fields.error("tie_word_embeddings is false; GPT-2 models with an untied output head are not supported");
        }
        int vocabSize = fields.requiredPositiveInt("vocab_size");
        int maxPositions = fields.requiredPositiveInt("n_positions");
        int hiddenSize = fields.requiredPositiveInt("n_embd");
        int numLayers = fields.requiredPositiveInt("n_layer");
        int numHeads = fields.requiredPositiveInt("n_head");
        int innerSize = fields.positiveInt("n_inner", 4 * hiddenSize);
        double layerNormEpsilon = fields.positiveNumber("layer_norm_epsilon", DEFAULT_LAYER_NORM_EPSILON);
        try {
            return new Gpt2Config(vocabSize, maxPositions, hiddenSize, numLayers, numHeads, innerSize, layerNormEpsilon);
        } catch (ModelConfigException e) {
            throw fields.error(e.getMessage());
        }
    }

    @Override
    public String modelType() {
        return MODEL_TYPE;
    }

    @Override
    public int headDim() {
        return hiddenSize / numHeads;
    }

    @Override
    public boolean tieWordEmbeddings() {
        return true;
    }

    @Override
    public String toJson() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        root.putArray("architectures").add(ARCHITECTURE);
        root.put("model_type", MODEL_TYPE);
        root.put("vocab_size", vocabSize);
        root.put("n_positions", maxPositions);
        // Older Transformers releases size the causal-mask buffer from n_ctx.
        root.put("n_ctx", maxPositions);
        root.put("n_embd", hiddenSize);
        root.put("n_layer", numLayers);
        root.put("n_head", numHeads);
        root.put("n_inner", innerSize);
        root.put("layer_norm_epsilon", layerNormEpsilon);
        root.put("activation_function", ACTIVATION);
        root.put("tie_word_embeddings", true);
        return PythonJson.dumps(root) + "\n";
    }
}
