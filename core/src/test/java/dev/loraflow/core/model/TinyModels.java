package dev.loraflow.core.model;

import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.model.DecoderConfig.Family;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Small random models of both architectures with adapters whose B is random, so that every LoRA branch
 * changes the output; shared by the tests of the packages that run a model (generation).
 */
public final class TinyModels {

    /** An odd head dimension (20 / 4 = 5), and a context longer than a decode chunk. */
    public static final Gpt2Config GPT2 = new Gpt2Config(41, 80, 20, 2, 4, 28, 1e-5);
    /** Grouped-query attention (6 heads over 2) with head_dim 8, not hidden / heads. */
    public static final DecoderConfig LLAMA = DecoderConfig.llama(29, 20, 36, 2, 6, 2, 8, 80, 1e-5, 10000, false);

    /** Llama 3: rope_theta 500000 and llama3 rope scaling whose three frequency bands all occur (D = 8, original 16). */
    public static final DecoderConfig LLAMA3 = DecoderConfig.of(Family.LLAMA, 29, 16, 36, 2, 4, 2, 8, 80, 1e-5, 500000,
            false).withRopeScaling(RopeScaling.llama3(8, 1, 4, 16));
    /** Qwen2: biases on q/k/v, tied head, rope_theta 1e6. */
    public static final DecoderConfig QWEN2 = DecoderConfig.of(Family.QWEN2, 29, 24, 36, 2, 4, 2, 8, 80, 1e-6, 1e6, true);
    /** Mistral: a sliding window of 4 on every layer, shorter than the tests' sequences. */
    public static final DecoderConfig MISTRAL = DecoderConfig.of(Family.MISTRAL, 29, 16, 36, 2, 4, 2, 8, 80, 1e-5, 1e6,
            false).withSlidingWindow(4);
    /** Gemma: (1 + w) norms, √hidden embedding scale, gelu_pytorch_tanh, head_dim 8 ≠ 16/4, one kv head, tied. */
    public static final DecoderConfig GEMMA = DecoderConfig.of(Family.GEMMA, 29, 16, 36, 2, 4, 1, 8, 80, 1e-6, 10000, true);
    /**
     * Gemma 2: sandwich norms, query_pre_attn_scalar 12 ≠ head_dim, caps small enough to bite (attention 2,
     * logits 3) and a window of 3 on the even layers of three.
     */
    public static final DecoderConfig GEMMA2 = DecoderConfig.of(Family.GEMMA2, 29, 16, 36, 3, 4, 2, 8, 80, 1e-6, 10000,
            true).withGemma2Attention(12, 2, 3).withSlidingWindow(3);
    /** Phi-3: fused qkv_proj and gate_up_proj, a sliding window of 5. */
    public static final DecoderConfig PHI3 = DecoderConfig.of(Family.PHI3, 29, 20, 36, 2, 4, 2, 8, 80, 1e-5, 10000,
            false).withSlidingWindow(5);
    /**
     * One tiny config per decoder family, Llama 2-style first; head dimensions multiples of 8, as ONNX Runtime's
     * GroupQueryAttention (the exported graphs' attention) needs.
     */
    public static final List<DecoderConfig> DECODER_FAMILIES = List.of(LLAMA, LLAMA3, QWEN2, MISTRAL, GEMMA, GEMMA2, PHI3);

    private TinyModels() {}

    /** A test's name for a config: its model_type, with "3" for Llama 3's scaled RoPE. */
    public static String name(ModelConfig config) {
        return config instanceof DecoderConfig decoder && decoder.ropeScaling() != null
                ? config.modelType() + "3" : config.modelType();
    }

    /** The adapter a model of this config gets: every attention and MLP module, and the decoders' output head too. */
    public static LoraAdapterConfig lora(ModelConfig config) {
        LoraAdapterConfig.Builder builder = LoraAdapterConfig.builder().r(2).loraAlpha(4).loraDropout(0.25);
        return switch (config) {
            case Gpt2Config gpt2 -> builder.targetModules("c_attn", "c_proj", "c_fc").build();
            case DecoderConfig decoder when decoder.family().fusedProjections() -> builder.targetModules("qkv_proj",
                    "o_proj", "gate_up_proj", "down_proj", "lm_head").build();
            case DecoderConfig llama -> builder.targetModules("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                    "up_proj", "down_proj", "lm_head").build();
        };
    }

    /** Random weights from {@code seed}, adapters per {@link #lora} with A and B drawn from it too. */
    public static CausalLanguageModel adapted(ModelConfig config, long seed) {
        CausalLanguageModel model = CausalLanguageModel.create(config, weights(config, seed), lora(config), seed + 1);
        return withRandomLoraB(model, new Rng(seed + 2));
    }

    /**
     * Draws every adapter's B uniformly in ±0.3 from {@code rng}: as initialised B is zero and the adapter
     * would change nothing, so a test of adapters needs one that does.
     */
    public static CausalLanguageModel withRandomLoraB(CausalLanguageModel model, Rng rng) {
        for (LoRALinear module : model.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.3f);
            }
        }
        return model;
    }

    /**
     * Weights of either architecture spread wide enough that logits differ by whole units, so greedy
     * choices are never near-ties and a wrong computation shows; shared with the export, inference and
     * serving tests through core's test jar.
     */
    public static Map<String, float[]> spreadWeights(ModelConfig config, long seed) {
        Rng rng = new Rng(seed);
        Map<String, float[]> weights = new LinkedHashMap<>();
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            float[] values = new float[Math.toIntExact(spec.numel())];
            long fanIn = spec.shape().length == 2 ? spec.shape()[config instanceof Gpt2Config ? 0 : 1] : 1;
            for (int i = 0; i < values.length; i++) {
                values[i] = switch (spec.role()) {
                    case NORM_WEIGHT -> 1 + rng.nextUniform(0.2f);
                    case NORM_BIAS, LINEAR_BIAS -> rng.nextUniform(0.1f);
                    case LINEAR_WEIGHT -> rng.nextUniform((float) (1.5 / Math.sqrt(fanIn)));
                    case TOKEN_EMBEDDING, POSITION_EMBEDDING, OUTPUT_HEAD -> rng.nextUniform(0.8f);
                };
            }
            weights.put(spec.name(), values);
        }
        return weights;
    }

    public static Map<String, float[]> weights(ModelConfig config, long seed) {
        return switch (config) {
            case Gpt2Config gpt2 -> Gpt2ModelTest.randomWeights(gpt2, seed);
            case DecoderConfig llama -> DecoderModelTest.randomWeights(llama, 0.5, seed);
        };
    }

    /** Full-sequence logits [seqLen, vocab] of one sequence, without dropout, from a fresh workspace for the forward. */
    public static float[] forwardLogits(CausalLanguageModel model, int[] ids) {
        CausalLanguageModel.Workspace ws = model.newForwardWorkspace(1, ids.length);
        model.forward(ws, ids, null, false, 0);
        return ws.logits();
    }

    public static int[] randomIds(int count, int vocab, long seed) {
        Rng rng = new Rng(seed);
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = (int) Math.floorMod(rng.nextLong(), vocab);
        }
        return ids;
    }
}
