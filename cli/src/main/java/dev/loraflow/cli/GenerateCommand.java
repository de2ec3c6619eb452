package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continues a prompt with the model's KV-cache decoder; prints the ids (and text with a tokenizer) as one JSON line.")
final class GenerateCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    private Path model;

    @Option(names = "--adapter", description = "PEFT adapter directory to apply.")
    private Path adapter;

    @ArgGroup(exclusive = true, multiplicity = "1")
    private Prompt prompt;

    static final class Prompt {
        @Option(names = "--prompt", description = "Prompt text (needs the model's tokenizer.json).")
        String text;

        @Option(names = "--prompt-ids", split = ",", description = "Prompt token ids, comma-separated.")
        List<Integer> ids;
    }

    @Option(names = "--max-new-tokens", required = true, description = "Tokens to generate at most.")
    private int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 for greedy (default: ${DEFAULT-VALUE}).")
    private double temperature;

    @Option(names = "--top-k", defaultValue = "0", description = "Keep the k most likely tokens, 0 for all (default: ${DEFAULT-VALUE}).")
    private int topK;

    @Option(names = "--top-p", defaultValue = "1", description = "Nucleus sampling mass, 1 for all (default: ${DEFAULT-VALUE}).")
    private double topP;

    @Option(names = "--seed", defaultValue = "0", description = "Seeds the sampling (default: ${DEFAULT-VALUE}).")
    private long seed;

    @Override
    public Integer call() throws Exception {
        Options.positive(spec, "--max-new-tokens", maxNewTokens);
        Options.nonNegative(spec, "--temperature", temperature);
        Options.check(spec, topK >= 0, "--top-k must be >= 0, got " + topK);
        Options.check(spec, topP > 0 && topP <= 1, "--top-p must be in (0, 1], got " + topP);
        try (ModelFiles files = ModelFiles.open(model, adapter)) {
            int[] promptIds;
            if (prompt.text != null) {
                if (files.tokenizer() == null) {
                    throw new IllegalArgumentException(model + " has no tokenizer.json: pass --prompt-ids instead of --prompt");
                }
                promptIds = files.tokenizer().encode(prompt.text);
            } else {
                promptIds = prompt.ids.stream().mapToInt(Integer::intValue).toArray();
            }
            Options.check(spec, promptIds.length > 0, "the prompt is empty");
            Set<Integer> stop = files.eosTokenId().isPresent() ? Set.of(files.eosTokenId().getAsInt()) : Set.of();
            SamplingSettings settings = new SamplingSettings(maxNewTokens, temperature, topK, topP, seed, stop);
            GenerationResult result = Generator.generate(files.model(), promptIds, settings);
            ObjectNode line = new ObjectMapper().createObjectNode();
            line.putPOJO("prompt_ids", promptIds);
            line.putPOJO("ids", result.tokens());
            if (files.tokenizer() != null) {
                line.put("text", files.tokenizer().decode(result.tokens()));
            }
            line.put("finish_reason", result.finishReason().name().toLowerCase(java.util.Locale.ROOT));
            spec.commandLine().getOut().println(line);
        }
        return 0;
    }
}
