package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.data.JsonlExamples;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.core.train.Evaluation;
import dev.loraflow.core.train.MemoryEstimate;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Prints {\"loss\": <mean cross-entropy over counted tokens>, \"tokens\": <count>} for a data set.")
final class EvalCommand implements Callable<Integer>, HeapSized {

    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    private Path model;

    @Option(names = "--adapter", description = "PEFT adapter directory to apply.")
    private Path adapter;

    @Option(names = "--data", required = true, description = "JSONL examples (input_ids/labels, text, prompt/completion).")
    private Path data;

    @Option(names = "--batch-size", defaultValue = "8", description = "Sequences per forward (default: ${DEFAULT-VALUE}).")
    private int batchSize;

    /**
     * The forward's estimate for the batches the data makes (the pre-pass reads and tokenizes the data as the command
     * will: the sequence length is the longest example's), and the examples themselves, which stay on the heap.
     */
    @Override
    public OptionalLong heapNeeded() throws Exception {
        try (Tokenizer tokenizer = ModelFiles.readTokenizer(model)) {
            ModelConfig config = ModelConfig.read(model.resolve("config.json"));
            List<Example> examples = JsonlExamples.read(data, tokenizer, config.vocabSize());
            return OptionalLong.of(estimate(config, examples).heapBytes() + Example.heapBytes(examples));
        }
    }

    private MemoryEstimate estimate(ModelConfig config, List<Example> examples) throws Exception {
        return Evaluation.memoryEstimate(model, config, ModelFiles.readAdapterConfig(adapter), examples, batchSize);
    }

    @Override
    public Integer call() throws Exception {
        Options.positive(spec, "--batch-size", batchSize);
        // the data is read first, so that the memory check counts the batches it makes, before the model loads
        try (Tokenizer tokenizer = ModelFiles.readTokenizer(model)) {
            ModelConfig config = ModelConfig.read(model.resolve("config.json"));
            List<Example> examples = JsonlExamples.read(data, tokenizer, config.vocabSize());
            MemoryEstimate estimate = estimate(config, examples);
            estimate.require(estimate.optionsWithBf16("a smaller --batch-size"));
            try (ModelFiles files = ModelFiles.open(model, adapter, tokenizer)) {
                Evaluation.Result result = Evaluation.evaluate(files.model(), examples, batchSize, files.padId());
                ObjectNode line = new ObjectMapper().createObjectNode();
                line.put("loss", result.loss());
                line.put("tokens", result.tokens());
                spec.commandLine().getOut().println(line);
            }
        }
        return 0;
    }
}
