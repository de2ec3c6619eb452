package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.DecoderConfig.Family;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.ModelPresets;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

@Command(name = "init-model", mixinStandardHelpOptions = true,
        description = {"Writes a randomly initialised model as a Hugging Face directory: config.json with the",
                "family's own keys, model.safetensors, and a byte-level BPE tokenizer.json whose merges fill the",
                "whole vocabulary (" + ByteLevelTokenizerJson.VOCAB_SIZE + " to " + ByteLevelTokenizerJson.MAX_VOCAB_SIZE
                        + " ids; none otherwise, so every id can be decoded).",
                "Either --preset NAME, a released model's shape, or --arch with the shape options."})
final class InitModelCommand implements Callable<Integer> {

    private static final List<String> ARCHITECTURES = List.of("gpt2", "llama", "qwen2", "mistral", "gemma", "gemma2", "phi3");

    @Spec
    private CommandSpec spec;

    @Option(names = "--arch", description = "gpt2, llama, qwen2, mistral, gemma, gemma2 or phi3.")
    private String arch;

    @Option(names = "--preset", description = "A released model's shape: gpt2, tinyllama-1.1b, llama-3.2-1b, llama-3.2-3b,"
            + " llama-3.1-8b, qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b, mistral-7b-v0.3, gemma-2-2b, phi-3-mini-4k.")
    private String preset;

    @Option(names = "--layers", description = "Transformer blocks.")
    private Integer layers;

    @Option(names = "--hidden", description = "Hidden size.")
    private Integer hidden;

    @Option(names = "--heads", description = "Attention heads.")
    private Integer heads;

    @Option(names = "--kv-heads", description = "Key/value heads (RoPE decoders; default: --heads).")
    private Integer kvHeads;

    @Option(names = "--head-dim", description = "Head dimension (RoPE decoders; default: hidden / heads).")
    private Integer headDim;

    @Option(names = "--intermediate", description = "MLP inner size (default: 4·hidden for gpt2, 8/3·hidden rounded up to 64"
            + " for the others).")
    private Integer intermediate;

    @Option(names = "--vocab", description = "Vocabulary size.")
    private Integer vocab;

    @Option(names = "--context", description = "Positions (n_positions / max_position_embeddings).")
    private Integer context;

    @Option(names = "--sliding-window", description = "Sliding window of mistral, gemma2 (every other layer) and phi3;"
            + " 0 for none (default: none, gemma2 4096).")
    private Integer slidingWindow;

    @Option(names = "--dtype", defaultValue = "f32", description = "Stored weights: f32, bf16 or f16 (default: ${DEFAULT-VALUE}).")
    private String dtype;

    @Option(names = "--seed", defaultValue = "0", description = "Seeds the weights (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--out", required = true, description = "Directory to write.")
    private Path out;

    @Override
    public Integer call() throws Exception {
        DType storedAs = switch (dtype.toLowerCase(Locale.ROOT)) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            case "f16" -> DType.F16;
            default -> throw new ParameterException(spec.commandLine(), "--dtype must be f32, bf16 or f16, got " + dtype);
        };
        ModelConfig config;
        try {
            config = preset != null ? fromPreset() : fromShape();
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        Resources.requireDisk(out, ModelLayout.of(config).weights().stream()
                .mapToLong(weight -> weight.numel() * storedAs.byteSize()).sum(), "the checkpoint");
        RandomModel.write(config, seed, storedAs, out);
        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("model", out.toString());
        line.put("model_type", config.modelType());
        line.put("dtype", storedAs.name());
        line.put("tokenizer", Files.exists(out.resolve("tokenizer.json")));
        spec.commandLine().getOut().println(line);
        return 0;
    }

    private ModelConfig fromPreset() {
        List<String> shapeOptions = new ArrayList<>();
        Object[][] given = {{"--arch", arch}, {"--layers", layers}, {"--hidden", hidden}, {"--heads", heads},
                {"--kv-heads", kvHeads}, {"--head-dim", headDim}, {"--intermediate", intermediate}, {"--vocab", vocab},
                {"--context", context}, {"--sliding-window", slidingWindow}};
        Arrays.stream(given).filter(option -> option[1] != null).forEach(option -> shapeOptions.add((String) option[0]));
        Options.check(spec, shapeOptions.isEmpty(), "--preset gives the whole shape; drop " + String.join(", ", shapeOptions));
        return ModelPresets.get(preset);
    }

    private ModelConfig fromShape() {
        Options.check(spec, arch != null, "give --preset NAME, or --arch with --layers, --hidden, --heads, --vocab, --context");
        Options.check(spec, ARCHITECTURES.contains(arch), "--arch must be one of " + String.join(", ", ARCHITECTURES)
                + ", got " + arch);
        for (var option : new Object[][] {{"--layers", layers}, {"--hidden", hidden}, {"--heads", heads},
                {"--vocab", vocab}, {"--context", context}}) {
            Options.check(spec, option[1] != null, "--arch " + arch + " needs " + option[0]);
            Options.positive(spec, (String) option[0], (Integer) option[1]);
        }
        if (arch.equals("gpt2")) {
            Options.check(spec, kvHeads == null || kvHeads.equals(heads), "gpt2 has no grouped-query attention: drop --kv-heads");
            Options.check(spec, headDim == null && slidingWindow == null, "gpt2 takes no --head-dim or --sliding-window");
            Options.check(spec, hidden % heads == 0, "--hidden (" + hidden + ") must be a multiple of --heads (" + heads + ")");
            return new Gpt2Config(vocab, context, hidden, layers, heads, intermediate != null ? intermediate : 4 * hidden,
                    1e-5);
        }
        Options.check(spec, headDim != null || hidden % heads == 0,
                "--hidden (" + hidden + ") must be a multiple of --heads (" + heads + ") unless --head-dim is given");
        Family family = Family.valueOf(arch.toUpperCase(Locale.ROOT));
        // Each family's usual constants: the released models' norm epsilon, rope_theta and tying.
        double eps = switch (family) {
            case LLAMA, MISTRAL, PHI3 -> 1e-5;
            case QWEN2, GEMMA, GEMMA2 -> 1e-6;
        };
        double theta = family == Family.QWEN2 || family == Family.MISTRAL ? 1e6 : 10000;
        boolean tied = family == Family.GEMMA || family == Family.GEMMA2;
        DecoderConfig config = DecoderConfig.of(family, vocab, hidden,
                intermediate != null ? intermediate : gatedIntermediate(hidden), layers, heads,
                kvHeads != null ? kvHeads : heads, headDim != null ? headDim : hidden / heads, context, eps, theta, tied);
        int window = slidingWindow != null ? slidingWindow : family == Family.GEMMA2 ? 4096 : 0;
        if (window > 0) {
            Options.check(spec, family == Family.MISTRAL || family == Family.GEMMA2 || family == Family.PHI3,
                    "--sliding-window applies to mistral, gemma2 and phi3");
            config = config.withSlidingWindow(window);
        }
        return config;
    }

    /** Llama's SwiGLU width rule: 2/3 of 4·hidden, rounded up to a multiple of 64. */
    private static int gatedIntermediate(int hidden) {
        int width = 8 * hidden / 3;
        return (width + 63) / 64 * 64;
    }
}
