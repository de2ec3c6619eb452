package dev.loraflow.trainer.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.platform.store.SafePaths;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Base models by name, resolved only inside the models root and loaded once: jobs on the same base
 * share its frozen weights (nothing writes them; training changes only the adapters). A base is cached
 * under its real path, so names that denote one directory ({@code m}, {@code ./m}, {@code m/}, a link to
 * it) share one copy; at most {@code capacity} bases stay cached, the least recently used leaving first
 * (jobs that hold an evicted base keep it until they end).
 */
public final class BaseModels {

    /**
     * A loaded base: config, frozen weights (as stored, and each quantization a job asked for, loaded once),
     * the pad id its tokenizer implies, its content digest.
     */
    public record Base(String name, Path directory, ModelConfig config,
                       Map<Quantization, CheckpointWeights.BaseWeights> held, int padId, String sha256) {

        /** The weights held as {@code quantization} asks: BF16/F16 linear weights mapped, quantized ones off the heap. */
        public synchronized CheckpointWeights.BaseWeights weights(Quantization quantization) throws IOException {
            CheckpointWeights.BaseWeights weights = held.get(quantization);
            if (weights == null) {
                weights = CheckpointWeights.readFrozen(directory, ModelLayout.of(config), quantization);
                held.put(quantization, weights);
            }
            return weights;
        }

        /** Whether the weights as {@code quantization} asks are loaded already. */
        public synchronized boolean holds(Quantization quantization) {
            return held.containsKey(quantization);
        }

        /** A model on these weights with a fresh adapter of {@code lora}. */
        public CausalLanguageModel model(LoraAdapterConfig lora, long seed, Quantization quantization) throws IOException {
            CheckpointWeights.BaseWeights weights = weights(quantization);
            return CausalLanguageModel.create(config, weights.arrays(), weights.frozen(), lora, seed);
        }
    }

    private final Path root;
    private final int capacity;
    private final LinkedHashMap<Path, Base> loaded = new LinkedHashMap<>(16, 0.75f, true);

    public BaseModels(Path root, int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("the base model cache must hold at least 1 model, got " + capacity);
        }
        this.root = root.toAbsolutePath().normalize();
        this.capacity = capacity;
    }

    public synchronized Base get(String name) throws IOException {
        Path directory = resolve(name).toRealPath();
        Base base = loaded.get(directory);
        if (base == null) {
            base = load(name, directory);
            loaded.put(directory, base);
            var eldest = loaded.entrySet().iterator();
            while (loaded.size() > capacity) {
                eldest.next();
                eldest.remove();
            }
        }
        return base;
    }

    /** How many bases are cached now. */
    public synchronized int cached() {
        return loaded.size();
    }

    /**
     * The directory {@code name} denotes under the root; names with {@code ..}, absolute paths or links
     * that lead outside the root are refused.
     */
    public Path resolve(String name) throws IOException {
        return SafePaths.resolveInside(root, name, "base model");
    }

    private static Base load(String name, Path directory) throws IOException {
        ModelConfig config = ModelConfig.read(directory.resolve("config.json"));
        Base base = new Base(name, directory, config, new ConcurrentHashMap<>(), padId(directory),
                ModelDigest.of(directory));
        base.weights(Quantization.NONE);
        return base;
    }

    /** EOS from config.json (as the CLI pads), else 0: padding is label −100 and after every real token. */
    private static int padId(Path directory) throws IOException {
        JsonNode config = new ObjectMapper().readTree(Files.readString(directory.resolve("config.json")));
        JsonNode eos = config.path("eos_token_id");
        if (eos.isArray() && !eos.isEmpty()) {
            eos = eos.get(0);
        }
        return eos.isIntegralNumber() ? eos.asInt() : 0;
    }
}
