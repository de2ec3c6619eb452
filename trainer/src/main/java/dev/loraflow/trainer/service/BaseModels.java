package dev.loraflow.trainer.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.platform.store.SafePaths;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * Base models by name, resolved only inside the models root and loaded once: jobs on the same base
 * share its frozen weights (nothing writes them; training changes only the adapters).
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

        /** A model on these weights with a fresh adapter of {@code lora}. */
        public CausalLanguageModel model(LoraAdapterConfig lora, long seed, Quantization quantization) throws IOException {
            CheckpointWeights.BaseWeights weights = weights(quantization);
            return CausalLanguageModel.create(config, weights.arrays(), weights.frozen(), lora, seed);
        }
    }

    private final Path root;
    private final Map<String, Base> loaded = new ConcurrentHashMap<>();

    public BaseModels(Path root) {
        this.root = root.toAbsolutePath().normalize();
    }

    public Base get(String name) throws IOException {
        Base base = loaded.get(name);
        if (base == null) {
            base = load(name);
            loaded.put(name, base);
        }
        return base;
    }

    /**
     * The directory {@code name} denotes under the root; names with {@code ..}, absolute paths or links
     * that lead outside the root are refused.
     */
    public Path resolve(String name) throws IOException {
        return SafePaths.resolveInside(root, name, "base model");
    }

    private Base load(String name) throws IOException {
        Path directory = resolve(name);
        ModelConfig config = ModelConfig.read(directory.resolve("config.json"));
        Base base = new Base(name, directory, config, new ConcurrentHashMap<>(), padId(directory), digest(directory));
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

    /**
     * SHA-256 of the model's manifest — config.json and every safetensors file (and index), one
     * {@code "<sha256>  <file>"} line each in name order — the form the artifact store uses.
     */
    static String digest(Path directory) throws IOException {
        List<Path> files = new ArrayList<>();
        try (Stream<Path> entries = Files.list(directory)) {
            entries.filter(path -> Files.isRegularFile(path, LinkOption.NOFOLLOW_LINKS))
                    .filter(path -> {
                        String file = path.getFileName().toString();
                        return file.equals("config.json") || file.endsWith(".safetensors")
                                || file.equals("model.safetensors.index.json");
                    })
                    .sorted()
                    .forEach(files::add);
        }
        StringBuilder manifest = new StringBuilder();
        for (Path file : files) {
            manifest.append(Sha256.of(file)).append("  ").append(file.getFileName()).append('\n');
        }
        return Sha256.of(manifest.toString().getBytes(StandardCharsets.UTF_8));
    }
}
