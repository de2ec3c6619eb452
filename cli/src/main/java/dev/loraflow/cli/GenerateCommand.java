package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.core.train.MemoryEstimate;
import dev.loraflow.inference.Completion;
import dev.loraflow.inference.Engine;
import dev.loraflow.inference.EngineSettings;
import dev.loraflow.inference.GenerationListener;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.ServedModel;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Continues a prompt with the model's KV-cache decoder; prints the ids (and text with a tokenizer) as one JSON line.")
final class GenerateCommand implements Callable<Integer>, HeapSized {

    private static final String ADAPTER_NAME = "adapter";
    // The engine's INFO lines (a model closed) are a service's record; here the JSON line is the output.
    private static final Logger ENGINE_LOG = Logger.getLogger(Engine.class.getPackageName());

    static {
        ENGINE_LOG.setLevel(Level.WARNING);
    }

    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = {"Hugging Face model directory (core's Java decoder),",
            "or an exported FILE.onnx or a directory holding one (the inference engine that serving runs;",
            "config.json and tokenizer.json beside it, as export-onnx writes them)."})
    private Path model;

    @Option(names = "--adapter", description = "PEFT adapter directory to apply (to an .onnx: one exported --unmerged).")
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

    /**
     * What core's Java decoder holds generating from a prompt of {@code promptTokens}: the weights as it maps or reads
     * them, the adapter, and the key/value cache of the prompt and the new tokens (the generator's capacity).
     */
    private MemoryEstimate javaDecoderEstimate(long promptTokens) throws IOException {
        ModelConfig config = ModelConfig.read(model.resolve("config.json"));
        LoraAdapterConfig lora = ModelFiles.readAdapterConfig(adapter);
        int capacity = (int) Math.max(1, Math.min(config.maxPositions(), promptTokens + maxNewTokens - 1L));
        return MemoryEstimate.forGeneration(model, config, lora, Quantization.NONE, capacity);
    }

    /**
     * The launcher's pre-pass sizes the heap before the prompt is tokenized: a text prompt is taken as at most two
     * tokens per UTF-8 byte and 16 more (byte-level BPE and SentencePiece's byte fallback give at most one per byte of
     * the normalised text, which a normaliser may lengthen); the command checks again with the prompt's own count.
     */
    @Override
    public OptionalLong heapNeeded() throws Exception {
        if (exportedGraph() != null) {
            return OptionalLong.empty();
        }
        long promptTokens = prompt.ids != null ? prompt.ids.size()
                : 2L * prompt.text.getBytes(StandardCharsets.UTF_8).length + 16;
        return OptionalLong.of(javaDecoderEstimate(promptTokens).heapBytes());
    }

    @Override
    public Integer call() throws Exception {
        Options.positive(spec, "--max-new-tokens", maxNewTokens);
        Options.nonNegative(spec, "--temperature", temperature);
        Options.check(spec, topK >= 0, "--top-k must be >= 0, got " + topK);
        Options.check(spec, topP > 0 && topP <= 1, "--top-p must be in (0, 1], got " + topP);
        Path onnx = exportedGraph();
        if (onnx != null) {
            return generateWithEngine(onnx);
        }
        // the prompt is tokenized first, so that the memory check counts the cache it will fill, before the model loads
        try (Tokenizer tokenizer = ModelFiles.readTokenizer(model)) {
            int[] promptIds = promptIds(tokenizer);
            if (Files.isRegularFile(model.resolve("config.json"))) {
                MemoryEstimate estimate = javaDecoderEstimate(promptIds.length);
                estimate.require(estimate.optionsWithBf16("fewer --max-new-tokens, a shorter prompt"));
            }
            try (ModelFiles files = ModelFiles.open(model, adapter, tokenizer)) {
                GenerationResult result = Generator.generate(files.model(), promptIds, sampling(files.stopTokenIds()));
                print(promptIds, result.tokens(), tokenizer, result.finishReason());
            }
        }
        return 0;
    }

    /** The .onnx file --model names, or the one its directory holds; null for a Hugging Face directory. */
    private Path exportedGraph() throws IOException {
        if (model.getFileName() != null && model.getFileName().toString().endsWith(".onnx")) {
            Options.check(spec, Files.isRegularFile(model), "--model " + model + ": no such file");
            return model;
        }
        if (!Files.isDirectory(model)) {
            return null;
        }
        List<Path> graphs;
        try (Stream<Path> files = Files.list(model)) {
            graphs = files.filter(file -> file.getFileName().toString().endsWith(".onnx") && Files.isRegularFile(file))
                    .sorted().toList();
        }
        Options.check(spec, graphs.size() <= 1, "--model " + model + " holds several .onnx files "
                + graphs.stream().map(file -> file.getFileName().toString()).toList() + "; name one");
        return graphs.isEmpty() ? null : graphs.getFirst();
    }

    /**
     * The exported graph through the inference engine, as serving runs it: one request in a batch of one,
     * with the sampling, stop token and output of the Java path.
     */
    private int generateWithEngine(Path onnx) throws Exception {
        EngineSettings settings = EngineSettings.defaults().withBatching(1, 1);
        ServedModel served = ServedModel.load(onnx.getFileName().toString(), "1", onnx, null, settings);
        try (Engine engine = new Engine(settings)) {
            if (adapter != null) {
                served.loadAdapter(ADAPTER_NAME, PeftAdapter.read(adapter));
            }
            int[] promptIds = promptIds(served.tokenizer());
            GenerationRequest request = new GenerationRequest(promptIds,
                    sampling(served.stopTokenIds()), List.of(),
                    adapter == null ? null : ADAPTER_NAME);
            CompletableFuture<Completion> done = new CompletableFuture<>();
            if (!served.tryAcquire()) {
                throw new IllegalStateException(onnx + " was closed before it ran");
            }
            engine.submit(served, request, GenerationListener.completing(done));
            Completion completion;
            try {
                completion = done.get();
            } catch (ExecutionException e) {
                throw e.getCause() instanceof RuntimeException failure ? failure : e;
            }
            print(promptIds, completion.tokens(), served.tokenizer(), completion.finishReason());
        } finally {
            served.retire();
        }
        return 0;
    }

    private int[] promptIds(Tokenizer tokenizer) {
        int[] ids;
        if (prompt.text != null) {
            if (tokenizer == null) {
                throw new IllegalArgumentException(model + " has no tokenizer.json: pass --prompt-ids instead of --prompt");
            }
            ids = tokenizer.encode(prompt.text);
        } else {
            ids = prompt.ids.stream().mapToInt(Integer::intValue).toArray();
        }
        Options.check(spec, ids.length > 0, "the prompt is empty");
        return ids;
    }

    private SamplingSettings sampling(List<Integer> stopTokenIds) {
        return new SamplingSettings(maxNewTokens, temperature, topK, topP, seed, Set.copyOf(stopTokenIds));
    }

    private void print(int[] promptIds, int[] tokens, Tokenizer tokenizer, FinishReason finishReason) {
        ObjectNode line = new ObjectMapper().createObjectNode();
        line.putPOJO("prompt_ids", promptIds);
        line.putPOJO("ids", tokens);
        if (tokenizer != null) {
            line.put("text", tokenizer.decode(tokens));
        }
        line.put("finish_reason", finishReason.name().toLowerCase(Locale.ROOT));
        spec.commandLine().getOut().println(line);
    }
}
