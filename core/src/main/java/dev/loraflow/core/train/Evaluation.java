package dev.loraflow.core.train;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/** The causal-LM loss of a model over a data set, as training counts it. */
public final class Evaluation {

    /** Mean cross-entropy over every counted (shifted, not −100) token of the data, and their number. */
    public record Result(double loss, long tokens) {}

    private Evaluation() {}

    /** The batches {@link #evaluate} runs: {@code rows} sequences of {@code seqLen} tokens. */
    private record Batches(int rows, int seqLen) {

        static Batches of(ModelConfig config, List<Example> examples, int batchSize) {
            if (examples.isEmpty()) {
                throw new IllegalArgumentException("no example to evaluate");
            }
            if (batchSize <= 0) {
                throw new IllegalArgumentException("batch size must be > 0, got " + batchSize);
            }
            int longest = examples.stream().mapToInt(Example::length).max().orElseThrow();
            return new Batches(Math.min(batchSize, examples.size()), Math.max(2, Math.min(config.maxPositions(), longest)));
        }
    }

    /**
     * What {@link #evaluate} will hold for the model of {@code modelDirectory} with the adapter of {@code lora} (null
     * for none), known before the model is loaded: its weights, and the forward's workspace for its batches.
     */
    public static MemoryEstimate memoryEstimate(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora,
                                                List<Example> examples, int batchSize) throws IOException {
        Batches batches = Batches.of(config, examples, batchSize);
        return MemoryEstimate.forForwardPasses(modelDirectory, config, lora, Quantization.NONE, batches.rows(),
                batches.seqLen());
    }

    /**
     * Runs the examples in order, {@code batchSize} at a time, each truncated to the model's context
     * and right-padded to the longest of the data: padding only follows a sequence's tokens and is
     * labelled −100, so under the causal mask it changes no counted loss. A forward alone needs no block's
     * activations after the next block ran and nothing for a backward: the workspace keeps the residual stream entering
     * and leaving one block and that block's activations (the loss is the same bit for bit), so memory grows with one
     * block, not with depth.
     */
    public static Result evaluate(CausalLanguageModel model, List<Example> examples, int batchSize, int padId) {
        Batches batches = Batches.of(model.config(), examples, batchSize);
        int rows = batches.rows();
        int seqLen = batches.seqLen();
        CausalLanguageModel.Workspace workspace = model.newForwardWorkspace(rows, seqLen);
        int[] inputIds = new int[rows * seqLen];
        int[] labels = new int[rows * seqLen];
        double lossSum = 0;
        long tokens = 0;
        for (int first = 0; first < examples.size(); first += rows) {
            Arrays.fill(inputIds, padId);
            Arrays.fill(labels, Softmax.IGNORE_INDEX);
            for (int r = 0; r < rows && first + r < examples.size(); r++) {
                Example example = examples.get(first + r);
                int length = Math.min(seqLen, example.inputIds().length);
                System.arraycopy(example.inputIds(), 0, inputIds, r * seqLen, length);
                System.arraycopy(example.labels(), 0, labels, r * seqLen, length);
            }
            double loss = model.forward(workspace, inputIds, labels, false, 0);
            lossSum += loss * workspace.countedTokens();
            tokens += workspace.countedTokens();
        }
        return new Result(tokens == 0 ? 0 : lossSum / tokens, tokens);
    }
}
