package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.safetensors.DType;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "init-model", mixinStandardHelpOptions = true,
        description = {"Writes a randomly initialised model as a Hugging Face directory (config.json, model.safetensors,",
                "and a byte-level tokenizer.json when the vocabulary has room for one: >= 257)."})
final class InitModelCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--arch", required = true, description = "gpt2 or llama.")
    private String arch;

    @Option(names = "--layers", required = true, description = "Transformer blocks.")
    private int layers;

    @Option(names = "--hidden", required = true, description = "Hidden size.")
    private int hidden;

    @Option(names = "--heads", required = true, description = "Attention heads.")
    private int heads;

    @Option(names = "--kv-heads", description = "Key/value heads (llama; default: --heads).")
    private Integer kvHeads;

    @Option(names = "--intermediate", description = "MLP inner size (default: 4·hidden for gpt2, 8/3·hidden rounded up to 64 for llama).")
    private Integer intermediate;

    @Option(names = "--vocab", required = true, description = "Vocabulary size.")
    private int vocab;

    @Option(names = "--context", required = true, description = "Positions (n_positions / max_position_embeddings).")
    private int context;

    @Option(names = "--seed", defaultValue = "0", description = "Seeds the weights (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32, bf16 or f16: how the weights are stored (default: ${DEFAULT-VALUE}).")
    private String dtype;

    @Option(names = "--out", required = true, description = "Directory to write.")
    private Path out;

    @Override
    public Integer call() throws Exception {
        for (var option : new Object[][] {{"--layers", layers}, {"--hidden", hidden}, {"--heads", heads},
                {"--vocab", vocab}, {"--context", context}}) {
            Options.positive(spec, (String) option[0], (Integer) option[1]);
        }
        Options.check(spec, hidden % heads == 0, "--hidden (" + hidden + ") must be a multiple of --heads (" + heads + ")");
        ModelConfig config;
        try {
            config = switch (arch) {
                case "gpt2" -> {
                    Options.check(spec, kvHeads == null || kvHeads == heads, "gpt2 has no grouped-query attention: drop --kv-heads");
                    yield new Gpt2Config(vocab, context, hidden, layers, heads, intermediate != null ? intermediate : 4 * hidden,
                            1e-5);
                }
                case "llama" -> DecoderConfig.llama(vocab, hidden, intermediate != null ? intermediate : llamaIntermediate(hidden),
                        layers, heads, kvHeads != null ? kvHeads : heads, hidden / heads, context, 1e-5, 10000, false);
                default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--arch must be gpt2 or llama, got " + arch);
            };
        } catch (IllegalArgumentException e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        DType storedAs = switch (dtype) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            case "f16" -> DType.F16;
            default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--dtype must be f32, bf16 or f16, got " + dtype);
        };
        Resources.requireDisk("init-model", out, ModelLayout.of(config).weights().stream()
                .mapToLong(weight -> weight.numel() * storedAs.byteSize()).sum(), "the checkpoint");
        RandomModel.write(config, seed, storedAs, out);
        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("model", out.toString());
        line.put("model_type", config.modelType());
        line.put("dtype", dtype);
        spec.commandLine().getOut().println(line);
        return 0;
    }

    /** Llama's SwiGLU width rule: 2/3 of 4·hidden, rounded up to a multiple of 64. */
    private static int llamaIntermediate(int hidden) {
        int width = 8 * hidden / 3;
        return (width + 63) / 64 * 64;
    }
}
