package dev.loraflow.core.merge;

import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.LoraTarget;
import dev.loraflow.core.model.LoraTargets;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.TinyModels;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Tiny bases of both architectures written as Hugging Face directories, and adapters with random B. */
public final class MergeFixtures {

    /** Tied head, a bias everywhere, Conv1D weights. */
    public static final Gpt2Config GPT2 = new Gpt2Config(41, 32, 20, 2, 4, 28, 1e-5);
    /** Grouped-query attention, untied head. */
    public static final DecoderConfig LLAMA = DecoderConfig.llama(29, 20, 36, 2, 6, 2, 6, 32, 1e-5, 10000, false);

    private MergeFixtures() {}

    /** Weights large enough that logits spread over several units, so a wrong merge shows. */
    public static Map<String, float[]> weights(ModelConfig config, long seed) {
        return TinyModels.spreadWeights(config, seed);
    }

    /**
     * A model directory: config.json, model.safetensors in {@code dtype} and a stand-in tokenizer.json.
     *
     * @param gpt2Prefix GPT-2 tensors named as GPT2LMHeadModel saves them ({@code transformer.h.0...}) rather
     *                   than as the hub's original checkpoints ({@code h.0...})
     */
    public static Path writeBase(Path directory, ModelConfig config, Map<String, float[]> weights, DType dtype,
                          boolean gpt2Prefix) throws IOException {
        return writeBase(directory, config, weights, dtype, gpt2Prefix, Map.of());
    }

    /** @param extras tensors Transformers ignores on load (mask buffers, a tied head), stored F32 as [n] */
    public static Path writeBase(Path directory, ModelConfig config, Map<String, float[]> weights, DType dtype,
                          boolean gpt2Prefix, Map<String, float[]> extras) throws IOException {
        return writeBase(directory, config, weights, dtype, gpt2Prefix, extras, Long.MAX_VALUE);
    }

    /** @param maxShardBytes split into shards of at most this many bytes of data, as save_pretrained does */
    public static Path writeBase(Path directory, ModelConfig config, Map<String, float[]> weights, DType dtype,
                          boolean gpt2Prefix, Map<String, float[]> extras, long maxShardBytes) throws IOException {
        ModelLayout layout = ModelLayout.of(config);
        var writer = new SafetensorsWriter().putMetadata("format", "pt");
        extras.forEach((name, values) -> writer.add(name, values, DType.F32, values.length));
        for (var entry : weights.entrySet()) {
            writer.add(savedName(layout, entry.getKey(), gpt2Prefix), entry.getValue(), dtype,
                    layout.weight(entry.getKey()).shape());
        }
        Files.createDirectories(directory);
        writer.writeSharded(directory, maxShardBytes);
        Files.writeString(directory.resolve("config.json"), config.toJson());
        Files.writeString(directory.resolve("tokenizer.json"), "{\"version\": \"1.0\", \"stand-in\": true}");
        return directory;
    }

    public static String savedName(ModelLayout layout, String canonical, boolean gpt2Prefix) {
        if (!gpt2Prefix || !(layout.config() instanceof Gpt2Config)) {
            return canonical;
        }
        int dot = canonical.lastIndexOf('.');
        return layout.peftModulePath(canonical.substring(0, dot)) + canonical.substring(dot);
    }

    /** Every attention and MLP module, r = 2, α = 4; A and B random (B is zero only before training). */
    public static LoraAdapterConfig lora(ModelConfig config) {
        LoraAdapterConfig.Builder builder = LoraAdapterConfig.builder().r(2).loraAlpha(4);
        return switch (config) {
            case Gpt2Config _ -> builder.targetModules("c_attn", "c_proj", "c_fc").build();
            case DecoderConfig _ -> builder.targetModules("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                    "down_proj", "lm_head").build();
        };
    }

    public static PeftAdapter adapter(ModelConfig config, LoraAdapterConfig lora, long seed, float bBound) {
        Rng rng = new Rng(seed);
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (LoraTarget target : LoraTargets.select(ModelLayout.of(config), lora)) {
            float[] a = new float[target.rank() * target.in()];
            float[] b = new float[target.out() * target.rank()];
            for (int i = 0; i < a.length; i++) {
                a[i] = rng.nextUniform((float) (1 / Math.sqrt(target.in())));
            }
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(bBound);
            }
            modules.put(target.modulePath(), new LoraWeights(target.modulePath(), target.rank(), target.in(), target.out(), a, b));
        }
        return new PeftAdapter(lora, modules);
    }

    /**
     * An adapter directory as PEFT's save_pretrained writes it, without going through loraflow's writer:
     * the config JSON given (indent 2, sorted keys) and the factors under PEFT's key names.
     */
    public static Path writePeftLayout(Path directory, String adapterConfigJson, Map<String, LoraWeights> modules)
            throws IOException {
        var writer = new SafetensorsWriter().putMetadata("format", "pt");
        for (LoraWeights factors : modules.values()) {
            writer.add("base_model.model." + factors.modulePath() + ".lora_A.weight", factors.a(), DType.F32,
                    factors.r(), factors.inFeatures());
            writer.add("base_model.model." + factors.modulePath() + ".lora_B.weight", factors.b(), DType.F32,
                    factors.outFeatures(), factors.r());
        }
        Files.createDirectories(directory);
        writer.write(directory.resolve("adapter_model.safetensors"));
        Files.writeString(directory.resolve("adapter_config.json"), adapterConfigJson, StandardCharsets.UTF_8);
        return directory;
    }
}
