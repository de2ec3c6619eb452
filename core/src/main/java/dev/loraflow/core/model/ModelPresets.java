package dev.loraflow.core.model;

import dev.loraflow.core.model.DecoderConfig.Family;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The shapes of the released models people fine-tune, with the values of their published config.json
 * (Hugging Face Hub), for random models and benchmarks of the real sizes: {@code init-model --preset},
 * {@code bench-training}. Token ids (bos/eos) are not part of a shape.
 */
public final class ModelPresets {

    private static final Map<String, ModelConfig> PRESETS = presets();

    private ModelPresets() {}

    private static Map<String, ModelConfig> presets() {
        Map<String, ModelConfig> presets = new LinkedHashMap<>();
        // openai-community/gpt2
        presets.put("gpt2", new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5));
        // TinyLlama/TinyLlama-1.1B-Chat-v1.0
        presets.put("tinyllama-1.1b", DecoderConfig.llama(32000, 2048, 5632, 22, 32, 4, 64, 2048, 1e-5, 10000, false));
        // meta-llama/Llama-3.2-1B, -3B and Llama-3.1-8B: rope_theta 500000, llama3 rope scaling to 131072 positions
        presets.put("llama-3.2-1b", DecoderConfig.of(Family.LLAMA, 128256, 2048, 8192, 16, 32, 8, 64, 131072, 1e-5,
                500000, true).withRopeScaling(RopeScaling.llama3(32, 1, 4, 8192)));
        presets.put("llama-3.2-3b", DecoderConfig.of(Family.LLAMA, 128256, 3072, 8192, 28, 24, 8, 128, 131072, 1e-5,
                500000, true).withRopeScaling(RopeScaling.llama3(32, 1, 4, 8192)));
        presets.put("llama-3.1-8b", DecoderConfig.of(Family.LLAMA, 128256, 4096, 14336, 32, 32, 8, 128, 131072, 1e-5,
                500000, false).withRopeScaling(RopeScaling.llama3(8, 1, 4, 8192)));
        // Qwen/Qwen2.5-0.5B, -1.5B, -7B: q/k/v biases, rope_theta 1e6, sliding window off
        presets.put("qwen2.5-0.5b", DecoderConfig.of(Family.QWEN2, 151936, 896, 4864, 24, 14, 2, 64, 32768, 1e-6, 1e6,
                true));
        presets.put("qwen2.5-1.5b", DecoderConfig.of(Family.QWEN2, 151936, 1536, 8960, 28, 12, 2, 128, 32768, 1e-6, 1e6,
                true));
        presets.put("qwen2.5-7b", DecoderConfig.of(Family.QWEN2, 152064, 3584, 18944, 28, 28, 4, 128, 131072, 1e-6, 1e6,
                false));
        // mistralai/Mistral-7B-v0.3: sliding_window null
        presets.put("mistral-7b-v0.3", DecoderConfig.of(Family.MISTRAL, 32768, 4096, 14336, 32, 32, 8, 128, 32768, 1e-5,
                1e6, false));
        // google/gemma-2-2b: head_dim 256, softcaps 50 and 30, a 4096 window on every other layer
        presets.put("gemma-2-2b", DecoderConfig.of(Family.GEMMA2, 256000, 2304, 9216, 26, 8, 4, 256, 8192, 1e-6, 10000,
                true).withGemma2Attention(256, 50, 30).withSlidingWindow(4096));
        // microsoft/Phi-3-mini-4k-instruct: fused projections, sliding_window 2047
        presets.put("phi-3-mini-4k", DecoderConfig.of(Family.PHI3, 32064, 3072, 8192, 32, 32, 32, 96, 4096, 1e-5, 10000,
                false).withSlidingWindow(2047));
        return Collections.unmodifiableMap(presets);
    }

    /** Every preset by name, in the order above. */
    public static Map<String, ModelConfig> all() {
        return PRESETS;
    }

    /**
     * @throws IllegalArgumentException naming the presets when there is none of that name
     */
    public static ModelConfig get(String name) {
        ModelConfig config = PRESETS.get(name);
        if (config == null) {
            throw new IllegalArgumentException("no preset \"" + name + "\"; presets: " + String.join(", ", PRESETS.keySet()));
        }
        return config;
    }
}
