package dev.loraflow.core.train;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.CausalLanguageModel;
import java.util.Arrays;
import java.util.List;

/** The causal-LM loss of a model over a data set, as training counts it. */
public final class Evaluation {

    /** Mean cross-entropy over every counted (shifted, not −100) token of the data, and their number. */
    public record Result(double loss, long tokens) {}

    private Evaluation() {}

    /**
     * Runs the examples in order, {@code batchSize} at a time, each truncated to the model's context
     * and right-padded to the longest of the data: padding only follows a sequence's tokens and is
     * labelled −100, so under the causal mask it changes no counted loss.
     */
    public static Result evaluate(CausalLanguageModel model, List<Example> examples, int batchSize, int padId) {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no example to evaluate");
        }
        if (batchSize <= 0) {
            throw new IllegalArgumentException("batch size must be > 0, got " + batchSize);
        }
        int context = model.config().maxPositions();
        int seqLen = Math.min(context, examples.stream().mapToInt(example -> example.inputIds().length).max().orElseThrow());
        seqLen = Math.max(seqLen, 2);
        int rows = Math.min(batchSize, examples.size());
        CausalLanguageModel.Workspace workspace = model.newWorkspace(rows, seqLen);
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
