package dev.loraflow.core.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.PythonJson;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * The configuration of a RoPE decoder: Llama and the families built on its block — Qwen2, Mistral,
 * Gemma, Gemma 2 and Phi-3 — whose differences are flags here and, where they are structural
 * (Gemma 2's sandwich norms, Phi-3's fused projections), traits of the {@link Family}.
 *
 * <p>Every block is x += o_proj(attention(rope(q), rope(k), v)) and x += down_proj(act(gate) ⊙ up)
 * over RMSNorm'd inputs, grouped-query attention, as Transformers' modeling code of each family
 * computes it in float32.
 *
 * @param family              which Transformers model class the config describes
 * @param vocabSize           {@code vocab_size}
 * @param hiddenSize          {@code hidden_size}
 * @param intermediateSize    {@code intermediate_size}, the gated MLP width
 * @param numLayers           {@code num_hidden_layers}
 * @param numHeads            {@code num_attention_heads}
 * @param numKeyValueHeads    {@code num_key_value_heads}; equal to numHeads without grouped-query attention
 * @param headDim             {@code head_dim}; HF's default is hidden_size / num_attention_heads (256 for Gemma)
 * @param maxPositions        {@code max_position_embeddings}, the longest sequence loraflow runs
 * @param rmsNormEps          {@code rms_norm_eps}
 * @param ropeTheta           {@code rope_theta}
 * @param ropeScaling         {@code rope_scaling}, or null for plain RoPE
 * @param tieWordEmbeddings   {@code tie_word_embeddings}
 * @param activation          the gate's activation: {@code hidden_act} (Gemma: {@code hidden_activation})
 * @param attentionBias       which attention projections have a bias
 * @param queryPreAttnScalar  scores are scaled by its −½ power: Gemma 2's {@code query_pre_attn_scalar},
 *                            head_dim for the other families
 * @param attnLogitSoftcap    Gemma 2's {@code attn_logit_softcapping}: scores become c·tanh(s/c); 0 for none
 * @param finalLogitSoftcap   Gemma 2's {@code final_logit_softcapping}, on the logits; 0 for none
 * @param slidingWindow       {@code sliding_window}: a query of a windowed layer attends to itself and the
 *                            window − 1 positions before it; 0 for none
 * @param slidingLayers       per layer, whether it is windowed ({@code layer_types} "sliding_attention")
 */
public record DecoderConfig(
        Family family,
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
        RopeScaling ropeScaling,
        boolean tieWordEmbeddings,
        Activation activation,
        AttentionBias attentionBias,
        double queryPreAttnScalar,
        double attnLogitSoftcap,
        double finalLogitSoftcap,
        int slidingWindow,
        List<Boolean> slidingLayers) implements ModelConfig {

    /**
     * The decoder families: their {@code model_type}, their {@code *ForCausalLM} class, and the traits
     * that are structure rather than a config key.
     */
    public enum Family {
        LLAMA("llama", "LlamaForCausalLM"),
        QWEN2("qwen2", "Qwen2ForCausalLM"),
        MISTRAL("mistral", "MistralForCausalLM"),
        GEMMA("gemma", "GemmaForCausalLM"),
        GEMMA2("gemma2", "Gemma2ForCausalLM"),
        PHI3("phi3", "Phi3ForCausalLM");

        private final String modelType;
        private final String architecture;

        Family(String modelType, String architecture) {
            this.modelType = modelType;
            this.architecture = architecture;
        }

        public String modelType() {
            return modelType;
        }

        public String architecture() {
            return architecture;
        }

        /** Gemma's RMSNorm multiplies by (1 + weight), its weights stored as offsets from 1 (and initialised 0). */
        public boolean normWeightOffsetByOne() {
            return this == GEMMA || this == GEMMA2;
        }

        /** Gemma scales the token embeddings by √hidden_size (the output head reads them unscaled). */
        public boolean scalesEmbeddings() {
            return this == GEMMA || this == GEMMA2;
        }

        /**
         * Gemma 2 norms each branch's output too: post_attention_layernorm after o_proj,
         * pre_feedforward_layernorm before and post_feedforward_layernorm after the MLP.
         */
        public boolean sandwichNorms() {
            return this == GEMMA2;
        }

        /** Phi-3 computes q, k, v with one {@code qkv_proj} and gate, up with one {@code gate_up_proj}. */
        public boolean fusedProjections() {
            return this == PHI3;
        }

        static Family ofModelType(String modelType) {
            for (Family family : values()) {
                if (family.modelType.equals(modelType)) {
                    return family;
                }
            }
            return null;
        }
    }

    /** The MLP gate's activation. */
    public enum Activation {
        SILU("silu"),
        /** The tanh approximation, Transformers' {@code gelu_pytorch_tanh} (GPT-2's {@code gelu_new} formula). */
        GELU_TANH("gelu_pytorch_tanh");

        private final String json;

        Activation(String json) {
            this.json = json;
        }

        public String json() {
            return json;
        }
    }

    /** Which attention projections carry a bias. */
    public enum AttentionBias {
        NONE,
        /** q_proj, k_proj, v_proj (Qwen2). */
        QKV,
        /** q_proj, k_proj, v_proj and o_proj ({@code attention_bias: true} in Llama and Gemma). */
        QKVO;

        public boolean onQkv() {
            return this != NONE;
        }

        public boolean onOutput() {
            return this == QKVO;
        }
    }

    public static final double DEFAULT_RMS_NORM_EPS = 1e-6;
    public static final double DEFAULT_ROPE_THETA = 10000;
    private static final String SLIDING = "sliding_attention";
    private static final String FULL = "full_attention";

    public DecoderConfig {
        Objects.requireNonNull(family, "family");
        Objects.requireNonNull(activation, "activation");
        Objects.requireNonNull(attentionBias, "attentionBias");
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
        requirePositive("rms_norm_eps", rmsNormEps);
        requirePositive("rope_theta", ropeTheta);
        requirePositive("query_pre_attn_scalar", queryPreAttnScalar);
        requireNoneOrPositive("attn_logit_softcapping", attnLogitSoftcap);
        requireNoneOrPositive("final_logit_softcapping", finalLogitSoftcap);
        if (slidingWindow < 0) {
            throw new ModelConfigException("'sliding_window' must be positive or null, found " + slidingWindow);
        }
        slidingLayers = slidingLayers == null
                ? Collections.nCopies(numLayers, slidingWindow > 0)
                : List.copyOf(slidingLayers);
        if (slidingLayers.size() != numLayers) {
            throw new ModelConfigException("'layer_types' has " + slidingLayers.size() + " entries for "
                    + numLayers + " layers");
        }
        if (slidingWindow == 0 && slidingLayers.contains(true)) {
            throw new ModelConfigException("sliding_attention layers need a 'sliding_window'");
        }
        if (family.fusedProjections() && attentionBias != AttentionBias.NONE) {
            throw new ModelConfigException(family.modelType() + " projections have no bias");
        }
    }

    /** A plain Llama: no bias, SiLU, plain RoPE, no window — the shape older code and tests build. */
    public static DecoderConfig llama(int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numHeads,
                                      int numKeyValueHeads, int headDim, int maxPositions, double rmsNormEps,
                                      double ropeTheta, boolean tieWordEmbeddings) {
        return of(Family.LLAMA, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads, headDim,
                maxPositions, rmsNormEps, ropeTheta, tieWordEmbeddings);
    }

    /**
     * A config of the family with its defining flags as the released models set them: Qwen2's q/k/v
     * biases, Gemma's gelu_pytorch_tanh, Gemma 2's softcaps (50 and 30) and query_pre_attn_scalar =
     * head_dim; no window and no rope scaling (see {@link #withSlidingWindow}, {@link #withRopeScaling}).
     */
    public static DecoderConfig of(Family family, int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
                                   int numHeads, int numKeyValueHeads, int headDim, int maxPositions, double rmsNormEps,
                                   double ropeTheta, boolean tieWordEmbeddings) {
        boolean gemma = family == Family.GEMMA || family == Family.GEMMA2;
        return new DecoderConfig(family, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads,
                headDim, maxPositions, rmsNormEps, ropeTheta, null, tieWordEmbeddings,
                gemma ? Activation.GELU_TANH : Activation.SILU,
                family == Family.QWEN2 ? AttentionBias.QKV : AttentionBias.NONE,
                headDim, family == Family.GEMMA2 ? 50 : 0, family == Family.GEMMA2 ? 30 : 0, 0, null);
    }

    public DecoderConfig withRopeScaling(RopeScaling scaling) {
        return new DecoderConfig(family, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads,
                headDim, maxPositions, rmsNormEps, ropeTheta, scaling, tieWordEmbeddings, activation, attentionBias,
                queryPreAttnScalar, attnLogitSoftcap, finalLogitSoftcap, slidingWindow, slidingLayers);
    }

    /**
     * The same config with a window on the layers the family windows: every layer (Mistral, Phi-3,
     * Qwen2 with max_window_layers 0), the even ones (Gemma 2); 0 removes the window.
     */
    public DecoderConfig withSlidingWindow(int window) {
        return withSlidingWindow(window, window == 0 ? null : defaultSlidingLayers(family, numLayers, 0));
    }

    /** The same config with a window on the given layers (null: every layer). */
    public DecoderConfig withSlidingWindow(int window, List<Boolean> layers) {
        return new DecoderConfig(family, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads,
                headDim, maxPositions, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings, activation, attentionBias,
                queryPreAttnScalar, attnLogitSoftcap, finalLogitSoftcap, window, layers);
    }

    /** The same config with Gemma 2's soft-capping values (0 for none) and query_pre_attn_scalar. */
    public DecoderConfig withGemma2Attention(double queryScalar, double attnSoftcap, double finalSoftcap) {
        return new DecoderConfig(family, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads,
                headDim, maxPositions, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings, activation, attentionBias,
                queryScalar, attnSoftcap, finalSoftcap, slidingWindow, slidingLayers);
    }

    /** The same config with biases on the given attention projections. */
    public DecoderConfig withAttentionBias(AttentionBias bias) {
        return new DecoderConfig(family, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKeyValueHeads,
                headDim, maxPositions, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings, activation, bias,
                queryPreAttnScalar, attnLogitSoftcap, finalLogitSoftcap, slidingWindow, slidingLayers);
    }

    /** The scale of q·kᵀ, query_pre_attn_scalar^−½, in float32 as the attention multiplies by it. */
    public float attentionScale() {
        return (float) (1 / Math.sqrt(queryPreAttnScalar));
    }

    /** The window of a layer's attention, 0 for full causal attention. */
    public int slidingWindow(int layer) {
        return slidingLayers.get(layer) ? slidingWindow : 0;
    }

    /** RoPE's inverse frequencies, rope_scaling applied. */
    public double[] ropeInverseFrequencies() {
        return ropeScaling == null
                ? RopeScaling.plainInverseFrequencies(headDim, ropeTheta)
                : ropeScaling.inverseFrequencies(headDim, ropeTheta);
    }

    /**
     * Which layers a family windows when config.json names no {@code layer_types}: Gemma 2 the even
     * ones (layer 0 first, as Transformers assigns them), Qwen2 those from {@code max_window_layers}
     * on, Mistral and Phi-3 all.
     */
    private static List<Boolean> defaultSlidingLayers(Family family, int layers, int maxWindowLayers) {
        List<Boolean> sliding = new ArrayList<>();
        for (int layer = 0; layer < layers; layer++) {
            sliding.add(switch (family) {
                case GEMMA2 -> layer % 2 == 0;
                case QWEN2 -> layer >= maxWindowLayers;
                default -> true;
            });
        }
        return sliding;
    }

    @Override
    public String modelType() {
        return family.modelType();
    }

    private static void requirePositive(String key, double value) {
        if (!(value > 0) || !Double.isFinite(value)) {
            throw new ModelConfigException("'" + key + "' must be a positive number, found " + value);
        }
    }

    private static void requireNoneOrPositive(String key, double value) {
        if (value != 0) {
            requirePositive(key, value);
        }
    }

    // ---------------------------------------------------------------- config.json

    static DecoderConfig fromFields(Family family, ConfigFields fields) {
        boolean gemma = family == Family.GEMMA || family == Family.GEMMA2;
        Activation activation = activation(family, fields);
        AttentionBias bias = attentionBias(family, fields);
        if (fields.bool("mlp_bias", false)) {
            throw fields.error("mlp_bias is true; MLP projections with a bias are not supported");
        }
        if (family == Family.PHI3) {
            refuseUnsupportedPhi3Keys(fields);
        }
        RopeScaling ropeScaling = RopeScaling.parse(fields.raw("rope_scaling"), fields);

        int hiddenSize = fields.requiredPositiveInt("hidden_size");
        int numHeads = fields.requiredPositiveInt("num_attention_heads");
        if (!fields.has("head_dim") && !gemma && hiddenSize % numHeads != 0) {
            throw fields.error("'num_attention_heads' (" + numHeads + ") must divide 'hidden_size' (" + hiddenSize
                    + ") when 'head_dim' is not given");
        }
        int vocabSize = fields.requiredPositiveInt("vocab_size");
        int intermediateSize = fields.requiredPositiveInt("intermediate_size");
        int numLayers = fields.requiredPositiveInt("num_hidden_layers");
        int numKeyValueHeads = fields.positiveInt("num_key_value_heads", numHeads);
        // GemmaConfig's own default head_dim is 256, not hidden_size / heads.
        int headDim = fields.positiveInt("head_dim", gemma ? 256 : hiddenSize / numHeads);
        int maxPositions = fields.requiredPositiveInt("max_position_embeddings");
        double rmsNormEps = fields.positiveNumber("rms_norm_eps", family == Family.PHI3 ? 1e-5 : DEFAULT_RMS_NORM_EPS);
        double ropeTheta = fields.positiveNumber("rope_theta", DEFAULT_ROPE_THETA);
        boolean tieWordEmbeddings = fields.bool("tie_word_embeddings", gemma);

        double queryScalar = headDim;
        double attnSoftcap = 0;
        double finalSoftcap = 0;
        if (family == Family.GEMMA2) {
            queryScalar = fields.positiveNumber("query_pre_attn_scalar", 256);
            attnSoftcap = fields.positiveNumberOrNone("attn_logit_softcapping", 50);
            finalSoftcap = fields.positiveNumberOrNone("final_logit_softcapping", 30);
        }
        int window = slidingWindow(family, fields);
        List<Boolean> slidingLayers = window == 0 ? null : slidingLayers(family, fields, numLayers);
        try {
            return new DecoderConfig(family, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads,
                    numKeyValueHeads, headDim, maxPositions, rmsNormEps, ropeTheta, ropeScaling, tieWordEmbeddings,
                    activation, bias, queryScalar, attnSoftcap, finalSoftcap, window, slidingLayers);
        } catch (ModelConfigException e) {
            throw fields.error(e.getMessage());
        }
    }

    private static Activation activation(Family family, ConfigFields fields) {
        // Transformers' Gemma reads hidden_activation and ignores the legacy hidden_act ("gelu" in Gemma 1's
        // configs), using gelu_pytorch_tanh when hidden_activation is not set.
        boolean gemma = family == Family.GEMMA || family == Family.GEMMA2;
        String key = gemma ? "hidden_activation" : "hidden_act";
        String name = fields.string(key, gemma ? Activation.GELU_TANH.json() : Activation.SILU.json());
        for (Activation activation : Activation.values()) {
            if (activation.json().equals(name)) {
                return activation;
            }
        }
        throw fields.error(key + " \"" + name + "\" is not supported; supported: \"silu\", \"gelu_pytorch_tanh\"");
    }

    private static AttentionBias attentionBias(Family family, ConfigFields fields) {
        return switch (family) {
            // Qwen2's q/k/v always have a bias and its o_proj never does.
            case QWEN2 -> AttentionBias.QKV;
            case LLAMA, GEMMA, GEMMA2 -> fields.bool("attention_bias", false) ? AttentionBias.QKVO : AttentionBias.NONE;
            case MISTRAL, PHI3 -> AttentionBias.NONE;
        };
    }

    private static void refuseUnsupportedPhi3Keys(ConfigFields fields) {
        JsonNode scaling = fields.raw("rope_scaling");
        if (scaling != null && scaling.isObject()) {
            JsonNode type = scaling.hasNonNull("rope_type") ? scaling.get("rope_type") : scaling.get("type");
            String name = type == null ? "" : type.asText();
            if (name.equals("longrope") || name.equals("su") || name.equals("yarn")) {
                throw fields.error("rope_scaling \"" + name + "\" (Phi-3's 128k long-context RoPE) is not supported;"
                        + " the 4k Phi-3 models, with rope_scaling null, are");
            }
        }
        if (fields.has("partial_rotary_factor") && fields.positiveNumber("partial_rotary_factor", 1) != 1) {
            throw fields.error("partial_rotary_factor " + fields.raw("partial_rotary_factor")
                    + " is not supported; RoPE over the whole head (1.0) is");
        }
    }

    /** The window size, 0 for none, with each family's HF default when the key is absent. */
    private static int slidingWindow(Family family, ConfigFields fields) {
        return switch (family) {
            case LLAMA, GEMMA -> 0;
            // MistralConfig's default is 4096; released Mistral v0.2+ configs say null.
            case MISTRAL, GEMMA2 -> fields.positiveIntOrNone("sliding_window", 4096);
            case PHI3 -> fields.positiveIntOrNone("sliding_window", 0);
            // Qwen2 honours sliding_window only with use_sliding_window (false in the released models).
            case QWEN2 -> fields.bool("use_sliding_window", false) ? fields.positiveIntOrNone("sliding_window", 4096) : 0;
        };
    }

    private static List<Boolean> slidingLayers(Family family, ConfigFields fields, int numLayers) {
        JsonNode layerTypes = fields.raw("layer_types");
        if (layerTypes == null) {
            int maxWindowLayers = family == Family.QWEN2 ? fields.positiveIntOrNone("max_window_layers", 28) : 0;
            return defaultSlidingLayers(family, numLayers, maxWindowLayers);
        }
        if (!layerTypes.isArray()) {
            throw fields.error("'layer_types' must be a list, found " + layerTypes);
        }
        List<Boolean> sliding = new ArrayList<>();
        for (JsonNode type : layerTypes) {
            if (!type.isTextual() || !(type.textValue().equals(SLIDING) || type.textValue().equals(FULL))) {
                throw fields.error("'layer_types' entries must be \"" + SLIDING + "\" or \"" + FULL + "\", found " + type);
            }
            sliding.add(type.textValue().equals(SLIDING));
        }
        return sliding;
    }

    @Override
    public String toJson() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        root.putArray("architectures").add(family.architecture());
        root.put("model_type", family.modelType());
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
        if (ropeScaling == null) {
            root.putNull("rope_scaling");
        } else {
            root.set("rope_scaling", ropeScaling.toJson());
        }
        boolean gemma = family == Family.GEMMA || family == Family.GEMMA2;
        root.put(gemma ? "hidden_activation" : "hidden_act", activation.json());
        if (family == Family.LLAMA || gemma) {
            root.put("attention_bias", attentionBias.onQkv());
        }
        if (family == Family.LLAMA) {
            root.put("mlp_bias", false);
        }
        root.put("tie_word_embeddings", tieWordEmbeddings);
        if (family == Family.GEMMA2) {
            root.put("query_pre_attn_scalar", queryPreAttnScalar);
            putNoneOr(root, "attn_logit_softcapping", attnLogitSoftcap);
            putNoneOr(root, "final_logit_softcapping", finalLogitSoftcap);
        }
        switch (family) {
            case MISTRAL, GEMMA2, PHI3 -> {
                if (slidingWindow == 0) {
                    root.putNull("sliding_window");
                } else {
                    root.put("sliding_window", slidingWindow);
                }
            }
            case QWEN2 -> {
                root.put("use_sliding_window", slidingWindow > 0);
                root.put("sliding_window", slidingWindow > 0 ? slidingWindow : 4096);
                int firstWindowed = slidingLayers.indexOf(true);
                root.put("max_window_layers", firstWindowed < 0 ? numLayers : firstWindowed);
            }
            case LLAMA, GEMMA -> { }
        }
        if (slidingWindow > 0) {
            ArrayNode types = root.putArray("layer_types");
            slidingLayers.forEach(sliding -> types.add(sliding ? SLIDING : FULL));
        }
        return PythonJson.dumps(root) + "\n";
    }

    private static void putNoneOr(ObjectNode root, String key, double value) {
        if (value == 0) {
            root.putNull(key);
        } else {
            root.put(key, value);
        }
    }
}
