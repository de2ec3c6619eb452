package dev.loraflow.core.model;

import dev.loraflow.core.model.WeightSpec.Role;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The tensors of a model's Hugging Face checkpoint and its linear modules, in the order Transformers
 * lists them, plus the name mappings between checkpoints, loraflow and PEFT adapters.
 *
 * <p>Canonical names are the checkpoint names Transformers' {@code save_pretrained} writes: GPT-2's
 * carry no {@code transformer.} prefix ({@code h.0.attn.c_attn.weight}), Llama's start with
 * {@code model.} ({@code model.layers.0.self_attn.q_proj.weight}).
 */
public final class ModelLayout {

    /** PEFT module name of the output head, a direct child of the *ForCausalLM model in both architectures. */
    public static final String OUTPUT_HEAD = "lm_head";

    private static final String GPT2_PREFIX = "transformer.";
    // Causal-mask buffers older GPT-2 checkpoints saved; Transformers rebuilds them.
    private static final Pattern GPT2_BUFFER = Pattern.compile("h\\.\\d+\\.attn\\.(bias|masked_bias)");
    // RoPE frequencies some Llama-family checkpoints saved; Transformers recomputes them from rope_theta.
    private static final Pattern LLAMA_BUFFER = Pattern.compile("model\\.layers\\.\\d+\\.self_attn\\.rotary_emb\\.inv_freq");
    private static final String OUTPUT_HEAD_WEIGHT = OUTPUT_HEAD + ".weight";

    private final ModelConfig config;
    private final List<WeightSpec> weights;
    private final Map<String, WeightSpec> weightsByName;
    private final List<LinearModule> linearModules;

    private ModelLayout(ModelConfig config, List<WeightSpec> weights, List<LinearModule> linearModules) {
        this.config = config;
        this.weights = List.copyOf(weights);
        this.linearModules = List.copyOf(linearModules);
        Map<String, WeightSpec> byName = new LinkedHashMap<>();
        weights.forEach(spec -> byName.put(spec.name(), spec));
        this.weightsByName = Collections.unmodifiableMap(byName);
    }

    /** The layout of a model with this configuration. */
    public static ModelLayout of(ModelConfig config) {
        Objects.requireNonNull(config, "config");
        var builder = new Builder();
        switch (config) {
            case Gpt2Config gpt2 -> gpt2(gpt2, builder);
            case DecoderConfig decoder -> decoder(decoder, builder);
        }
        return new ModelLayout(config, builder.weights, builder.linearModules);
    }

    private static void gpt2(Gpt2Config config, Builder builder) {
        long embd = config.hiddenSize();
        builder.weight("wte.weight", Role.TOKEN_EMBEDDING, config.vocabSize(), embd);
        builder.weight("wpe.weight", Role.POSITION_EMBEDDING, config.maxPositions(), embd);
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "h." + layer + ".";
            builder.layerNorm(prefix + "ln_1", embd);
            builder.conv1d(prefix + "attn.c_attn", config.hiddenSize(), 3 * config.hiddenSize());
            builder.conv1d(prefix + "attn.c_proj", config.hiddenSize(), config.hiddenSize());
            builder.layerNorm(prefix + "ln_2", embd);
            builder.conv1d(prefix + "mlp.c_fc", config.hiddenSize(), config.innerSize());
            builder.conv1d(prefix + "mlp.c_proj", config.innerSize(), config.hiddenSize());
        }
        builder.layerNorm("ln_f", embd);
        builder.outputHead(config);
    }

    /**
     * Llama's block and its families' variants, each tensor where Transformers' module tree puts it:
     * q/k/v_proj (with Qwen2's biases) or Phi-3's fused qkv_proj (after o_proj, as Phi3Attention defines
     * them), gate/up_proj or Phi-3's gate_up_proj, then the norms, Gemma 2's four of them.
     */
    private static void decoder(DecoderConfig config, Builder builder) {
        int hidden = config.hiddenSize();
        int queryWidth = config.numHeads() * config.headDim();
        int keyValueWidth = config.numKeyValueHeads() * config.headDim();
        int inner = config.intermediateSize();
        boolean qkvBias = config.attentionBias().onQkv();
        builder.weight("model.embed_tokens.weight", Role.TOKEN_EMBEDDING, config.vocabSize(), hidden);
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            if (config.family().fusedProjections()) {
                builder.linear(prefix + "self_attn.o_proj", queryWidth, hidden, false);
                builder.linear(prefix + "self_attn.qkv_proj", hidden, queryWidth + 2 * keyValueWidth, false);
                builder.linear(prefix + "mlp.gate_up_proj", hidden, 2 * inner, false);
            } else {
                builder.linear(prefix + "self_attn.q_proj", hidden, queryWidth, qkvBias);
                builder.linear(prefix + "self_attn.k_proj", hidden, keyValueWidth, qkvBias);
                builder.linear(prefix + "self_attn.v_proj", hidden, keyValueWidth, qkvBias);
                builder.linear(prefix + "self_attn.o_proj", queryWidth, hidden, config.attentionBias().onOutput());
                builder.linear(prefix + "mlp.gate_proj", hidden, inner, false);
                builder.linear(prefix + "mlp.up_proj", hidden, inner, false);
            }
            builder.linear(prefix + "mlp.down_proj", inner, hidden, false);
            builder.weight(prefix + "input_layernorm.weight", Role.NORM_WEIGHT, hidden);
            builder.weight(prefix + "post_attention_layernorm.weight", Role.NORM_WEIGHT, hidden);
            if (config.family().sandwichNorms()) {
                builder.weight(prefix + "pre_feedforward_layernorm.weight", Role.NORM_WEIGHT, hidden);
                builder.weight(prefix + "post_feedforward_layernorm.weight", Role.NORM_WEIGHT, hidden);
            }
        }
        builder.weight("model.norm.weight", Role.NORM_WEIGHT, hidden);
        builder.outputHead(config);
    }

    public ModelConfig config() {
        return config;
    }

    /** Every tensor of the checkpoint, in Transformers' parameter order. */
    public List<WeightSpec> weights() {
        return weights;
    }

    /** The spec of a canonical tensor name, or null if the layout has no such tensor. */
    public WeightSpec weight(String canonicalName) {
        return weightsByName.get(canonicalName);
    }

    /** Every linear module, the output head last (it exists as a module even when its weight is tied). */
    public List<LinearModule> linearModules() {
        return linearModules;
    }

    /** The canonical name of a checkpoint tensor: GPT-2 checkpoints may or may not carry the {@code transformer.} prefix. */
    public String resolveName(String checkpointName) {
        if (config instanceof Gpt2Config && checkpointName.startsWith(GPT2_PREFIX)) {
            return checkpointName.substring(GPT2_PREFIX.length());
        }
        return checkpointName;
    }

    /** Whether a checkpoint tensor is one Transformers recomputes or re-ties on load, so loading skips it. */
    public boolean isIgnorable(String checkpointName) {
        String name = resolveName(checkpointName);
        if (config.tieWordEmbeddings() && name.equals(OUTPUT_HEAD_WEIGHT)) {
            return true;
        }
        Pattern buffer = switch (config) {
            case Gpt2Config _ -> GPT2_BUFFER;
            case DecoderConfig _ -> LLAMA_BUFFER;
        };
        return buffer.matcher(name).matches();
    }

    /**
     * Checks the tensors found in a checkpoint against this layout.
     *
     * @param found checkpoint tensor names and shapes
     * @param source names the checkpoint in the message
     * @return for each canonical tensor name, the checkpoint name it was found under, in layout order
     * @throws CheckpointLayoutException listing every missing, unexpected, duplicated or misshapen tensor
     */
    public Map<String, String> validate(Map<String, long[]> found, String source) {
        List<String> problems = new ArrayList<>();
        Map<String, String> checkpointNames = new LinkedHashMap<>();
        found.forEach((checkpointName, shape) -> {
            if (isIgnorable(checkpointName)) {
                return;
            }
            String name = resolveName(checkpointName);
            WeightSpec spec = weightsByName.get(name);
            if (spec == null) {
                problems.add("unexpected tensor " + checkpointName + " " + Arrays.toString(shape));
            } else if (checkpointNames.containsKey(name)) {
                problems.add("tensor " + name + " found twice, as " + checkpointNames.get(name) + " and " + checkpointName);
            } else {
                checkpointNames.put(name, checkpointName);
                if (!Arrays.equals(spec.shape(), shape)) {
                    problems.add("tensor " + checkpointName + ": expected shape " + Arrays.toString(spec.shape())
                            + ", found " + Arrays.toString(shape));
                }
            }
        });
        Map<String, String> inLayoutOrder = new LinkedHashMap<>();
        for (WeightSpec spec : weights) {
            String checkpointName = checkpointNames.get(spec.name());
            if (checkpointName == null) {
                problems.add("missing tensor " + spec.name() + " " + Arrays.toString(spec.shape()));
            } else {
                inLayoutOrder.put(spec.name(), checkpointName);
            }
        }
        if (!problems.isEmpty()) {
            throw new CheckpointLayoutException(source + " does not match the " + config.modelType() + " layout ("
                    + problems.size() + " problem" + (problems.size() == 1 ? "" : "s") + "):\n  "
                    + String.join("\n  ", problems));
        }
        return Collections.unmodifiableMap(inLayoutOrder);
    }

    /**
     * The module path PEFT uses in adapter keys and target matching: GPT-2's blocks live under
     * {@code transformer.} in GPT2LMHeadModel, Llama's canonical names are already PEFT's.
     */
    public String peftModulePath(String canonicalModule) {
        if (config instanceof Gpt2Config && !canonicalModule.equals(OUTPUT_HEAD)) {
            return GPT2_PREFIX + canonicalModule;
        }
        return canonicalModule;
    }

    /** The inverse of {@link #peftModulePath}. */
    public String canonicalModulePath(String peftModulePath) {
        if (peftModulePath.equals(OUTPUT_HEAD)) {
            return peftModulePath;
        }
        String prefix = config instanceof Gpt2Config ? GPT2_PREFIX : "model.";
        if (!peftModulePath.startsWith(prefix)) {
            throw new IllegalArgumentException("'" + peftModulePath + "' is not a " + config.modelType()
                    + " module path; those start with '" + prefix + "' or are '" + OUTPUT_HEAD + "'");
        }
        return config instanceof Gpt2Config ? peftModulePath.substring(prefix.length()) : peftModulePath;
    }

    private static final class Builder {
        final List<WeightSpec> weights = new ArrayList<>();
        final List<LinearModule> linearModules = new ArrayList<>();

        void weight(String name, Role role, long... shape) {
            weights.add(new WeightSpec(name, shape, role));
        }

        void layerNorm(String module, long width) {
            weight(module + ".weight", Role.NORM_WEIGHT, width);
            weight(module + ".bias", Role.NORM_BIAS, width);
        }

        /** GPT-2's Conv1D: a linear layer whose weight is stored [in, out], always with a bias. */
        void conv1d(String module, int in, int out) {
            weight(module + ".weight", Role.LINEAR_WEIGHT, in, out);
            weight(module + ".bias", Role.LINEAR_BIAS, out);
            linearModules.add(new LinearModule(module, in, out, true, false));
        }

        void linear(String module, int in, int out, boolean bias) {
            weight(module + ".weight", Role.LINEAR_WEIGHT, out, in);
            if (bias) {
                weight(module + ".bias", Role.LINEAR_BIAS, out);
            }
            linearModules.add(new LinearModule(module, in, out, false, false));
        }

        void outputHead(ModelConfig config) {
            if (!config.tieWordEmbeddings()) {
                weight(OUTPUT_HEAD_WEIGHT, Role.OUTPUT_HEAD, config.vocabSize(), config.hiddenSize());
            }
            linearModules.add(new LinearModule(OUTPUT_HEAD, config.hiddenSize(), config.vocabSize(), false, true));
        }
    }
}
