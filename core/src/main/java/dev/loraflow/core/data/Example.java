package dev.loraflow.core.data;

import dev.loraflow.core.kernels.Softmax;
import java.util.Arrays;
import java.util.List;

/**
 * One training sequence in Hugging Face's convention: labels line up with the input ids (the model
 * shifts them to predict the next token) and {@value Softmax#IGNORE_INDEX} marks a position that
 * adds nothing to the loss, such as a prompt token.
 *
 * @param inputIds token ids, at least one
 * @param labels   as many entries as inputIds, each a token id or {@value Softmax#IGNORE_INDEX}
 */
public record Example(int[] inputIds, int[] labels) {

    public Example {
        if (inputIds.length == 0) {
            throw new IllegalArgumentException("an example needs at least one input id");
        }
        if (labels.length != inputIds.length) {
            throw new IllegalArgumentException("labels has " + labels.length + " entries but input_ids has "
                    + inputIds.length);
        }
        inputIds = inputIds.clone();
        labels = labels.clone();
    }

    /** An example whose every token counts in the loss. */
    public static Example unmasked(int[] inputIds) {
        return new Example(inputIds, inputIds);
    }

    public int length() {
        return inputIds.length;
    }

    /**
     * The heap {@code examples} take: each example's two int arrays (its own copies, see the constructor) with their
     * 16-byte headers, each rounded up to 8 bytes as HotSpot lays objects out, the record itself (24 bytes), and the
     * list's reference to it.
     */
    public static long heapBytes(List<Example> examples) {
        long bytes = 0;
        for (Example example : examples) {
            long array = (16 + 4L * example.length() + 7) & ~7L;
            bytes += 2 * array + 24 + 8;
        }
        return bytes;
    }

    @Override
    public int[] inputIds() {
        return inputIds.clone();
    }

    @Override
    public int[] labels() {
        return labels.clone();
    }

    /** Copies the first {@code count} ids and labels into the given arrays at {@code offset}. */
    void copyPrefixTo(int count, int[] inputIdsOut, int[] labelsOut, int offset) {
        System.arraycopy(inputIds, 0, inputIdsOut, offset, count);
        System.arraycopy(labels, 0, labelsOut, offset, count);
    }

    // Records compare arrays by identity; two examples with equal contents are the same example.
    @Override
    public boolean equals(Object other) {
        return other instanceof Example example
                && Arrays.equals(inputIds, example.inputIds) && Arrays.equals(labels, example.labels);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "Example[inputIds=" + Arrays.toString(inputIds) + ", labels=" + Arrays.toString(labels) + "]";
    }
}
