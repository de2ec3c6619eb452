package dev.loraflow.onnx;

import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.TinyModels;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import java.util.List;
import java.util.Map;

/**
 * Tiny models of both architectures with weights large enough that the logits spread over several units
 * (so a wrong graph shows and greedy choices are not near-ties), and adapters whose B is random.
 */
final class TestModels {

    /** Head dimension 8 (GroupQueryAttention's smallest), a bias everywhere, tied head. */
    static final Gpt2Config GPT2 = new Gpt2Config(41, 32, 32, 2, 4, 28, 1e-5);
    /** Grouped-query attention, 6 heads over 2, head_dim 8 (not hidden / heads), untied head. */
    static final DecoderConfig LLAMA = DecoderConfig.llama(29, 20, 36, 2, 6, 2, 8, 32, 1e-5, 10000, false);
    /** As {@link #LLAMA} with the head tied to the embedding and one key-value head per query head. */
    static final DecoderConfig LLAMA_TIED = DecoderConfig.llama(29, 24, 36, 2, 4, 4, 8, 32, 1e-6, 500000, true);

    /** The decoder families beyond Llama 2's shape: core's tiny configs (Llama 3, Qwen2, Mistral, Gemma, Gemma 2, Phi-3). */
    static final List<DecoderConfig> FAMILIES = TinyModels.DECODER_FAMILIES.stream()
            .filter(config -> config != TinyModels.LLAMA).toList();

    private TestModels() {}

    /** Every attention and MLP module (GPT-2's "c_proj" names both attn.c_proj and mlp.c_proj); Llama's output head too. */
    static LoraAdapterConfig lora(ModelConfig config) {
        LoraAdapterConfig.Builder builder = LoraAdapterConfig.builder().r(2).loraAlpha(4).loraDropout(0.1);
        return switch (config) {
            case Gpt2Config _ -> builder.targetModules("c_attn", "c_proj", "c_fc").build();
            case DecoderConfig decoder when decoder.family().fusedProjections() -> builder.targetModules("qkv_proj",
                    "o_proj", "gate_up_proj", "down_proj", "lm_head").build();
            case DecoderConfig _ -> builder.targetModules("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                    "up_proj", "down_proj", "lm_head").build();
        };
    }

    static Map<String, float[]> weights(ModelConfig config, long seed) {
        return TinyModels.spreadWeights(config, seed);
    }

    static CausalLanguageModel base(ModelConfig config, Map<String, float[]> weights) {
        return CausalLanguageModel.create(config, weights, null, 0);
    }

    /** The adapter of {@link #lora} with A as initialised and B random, both from {@code seed}. */
    static CausalLanguageModel adapted(ModelConfig config, Map<String, float[]> weights, long seed) {
        CausalLanguageModel model = CausalLanguageModel.create(config, weights, lora(config), seed);
        return TinyModels.withRandomLoraB(model, new Rng(seed + 1));
    }
}
