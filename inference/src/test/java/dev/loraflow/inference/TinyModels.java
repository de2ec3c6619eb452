package dev.loraflow.inference;

import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.DecoderConfig.Family;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.RopeScaling;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.onnx.OnnxExporter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Tiny served models: exported to ONNX with config.json and the byte-level tokenizer beside them (vocab
 * 257: every id has a text), weights spread wide enough that greedy choices are not near-ties.
 */
public final class TinyModels {

    /** 2 layers, hidden 32, 4 heads, context 64. */
    public static final Gpt2Config GPT2 = new Gpt2Config(ByteLevelTokenizerJson.VOCAB_SIZE, 64, 32, 2, 4, 64, 1e-5);
    /** Grouped-query attention: 4 heads over 2, head_dim 8, context 64. */
    public static final DecoderConfig LLAMA = DecoderConfig.llama(ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 2, 8, 64,
            1e-5, 10000, false);

    /**
     * Every other decoder family at the same size: Llama 3's scaled RoPE, Qwen2's biases, windows of 5 and 6
     * (Mistral, Gemma 2 on every other layer, Phi-3), Gemma's norms and caps, Phi-3's fused projections.
     */
    public static final List<DecoderConfig> FAMILIES = List.of(
            DecoderConfig.of(Family.LLAMA, ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 2, 8, 64, 1e-5, 500000, false)
                    .withRopeScaling(RopeScaling.llama3(8, 1, 4, 16)),
            DecoderConfig.of(Family.QWEN2, ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 2, 8, 64, 1e-6, 1e6, true),
            DecoderConfig.of(Family.MISTRAL, ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 2, 8, 64, 1e-5, 1e6, false)
                    .withSlidingWindow(5),
            DecoderConfig.of(Family.GEMMA, ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 1, 16, 64, 1e-6, 10000, true),
            DecoderConfig.of(Family.GEMMA2, ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 2, 16, 64, 1e-6, 10000, true)
                    .withSlidingWindow(5),
            DecoderConfig.of(Family.PHI3, ByteLevelTokenizerJson.VOCAB_SIZE, 32, 48, 2, 4, 2, 8, 64, 1e-5, 10000, false)
                    .withSlidingWindow(6));

    private TinyModels() {}

    public static Map<String, float[]> weights(ModelConfig config, long seed) {
        return dev.loraflow.core.model.TinyModels.spreadWeights(config, seed);
    }

    public static CausalLanguageModel model(ModelConfig config, long seed) {
        return CausalLanguageModel.create(config, weights(config, seed), null, 0);
    }

    /** Attention adapters of rank 2 with A as initialised and B random, from {@code seed}. */
    public static CausalLanguageModel adapted(ModelConfig config, Map<String, float[]> weights, long seed) {
        return adapted(config, weights, seed, 2, switch (config) {
            case Gpt2Config _ -> new String[] {"c_attn", "c_fc"};
            case DecoderConfig decoder when decoder.family().fusedProjections() -> new String[] {"qkv_proj", "gate_up_proj"};
            case DecoderConfig _ -> new String[] {"q_proj", "v_proj", "up_proj"};
        });
    }

    /** Adapters of rank {@code rank} (alpha 2·rank) on the target modules, A as initialised and B random. */
    public static CausalLanguageModel adapted(ModelConfig config, Map<String, float[]> weights, long seed, int rank,
                                              String... targetModules) {
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(rank).loraAlpha(2 * rank).targetModules(targetModules).build();
        CausalLanguageModel model = CausalLanguageModel.create(config, weights, lora, seed);
        Rng rng = new Rng(seed + 1);
        for (LoRALinear module : model.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.3f);
            }
        }
        return model;
    }

    /** Exports the model (merged) into {@code dir}/model.onnx with config.json and the tokenizer; the .onnx path. */
    public static Path export(CausalLanguageModel model, Map<String, float[]> weights, Path dir) throws IOException {
        return export(model, weights, dir, OnnxExporter.Options.defaults());
    }

    public static Path export(CausalLanguageModel model, Map<String, float[]> weights, Path dir,
                              OnnxExporter.Options options) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), model.config().toJson(), StandardCharsets.UTF_8);
        ByteLevelTokenizerJson.write(dir, model.config().maxPositions());
        Path onnx = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, options, new OnnxExporter.Provenance(null, null, null), onnx);
        return onnx;
    }
}
