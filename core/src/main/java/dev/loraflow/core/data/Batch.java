package dev.loraflow.core.data;

import dev.loraflow.core.kernels.Softmax;
import java.util.Arrays;
import java.util.List;

/**
 * A training batch of {@code batchSize} sequences of {@code seqLen} positions, row-major, right-padded.
 *
 * @param inputIds [batchSize·seqLen] token ids, the pad id after each example's end
 * @param labels   [batchSize·seqLen] in Hugging Face's convention (aligned with inputIds, not shifted),
 *                 {@value Softmax#IGNORE_INDEX} over padding and masked tokens
 */
public record Batch(int[] inputIds, int[] labels, int batchSize, int seqLen) {

    public Batch {
        if (batchSize <= 0 || seqLen <= 0) {
            throw new IllegalArgumentException("batchSize and seqLen must be positive, found " + batchSize + " × " + seqLen);
        }
        long size = (long) batchSize * seqLen;
        if (inputIds.length != size || labels.length != size) {
            throw new IllegalArgumentException("a " + batchSize + " × " + seqLen + " batch needs " + size
                    + " input ids and labels, found " + inputIds.length + " and " + labels.length);
        }
    }

    /**
     * Packs examples into one batch, a row each: cut to their first {@code seqLen} tokens, right-padded
     * with {@code padId}, whose labels are {@value Softmax#IGNORE_INDEX}.
     */
    public static Batch pack(List<Example> rows, int seqLen, int padId) {
        checkShape(rows.size(), seqLen, padId);
        int[] inputIds = new int[rows.size() * seqLen];
        int[] labels = new int[rows.size() * seqLen];
        Arrays.fill(inputIds, padId);
        Arrays.fill(labels, Softmax.IGNORE_INDEX);
        for (int row = 0; row < rows.size(); row++) {
            Example example = rows.get(row);
            example.copyPrefixTo(Math.min(example.length(), seqLen), inputIds, labels, row * seqLen);
        }
        return new Batch(inputIds, labels, rows.size(), seqLen);
    }

    static void checkShape(int batchSize, int seqLen, int padId) {
        if (batchSize <= 0 || seqLen <= 0) {
            throw new IllegalArgumentException("batchSize and seqLen must be positive, found " + batchSize + " × " + seqLen);
        }
        if ((long) batchSize * seqLen > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a " + batchSize + " × " + seqLen + " batch does not fit in one array");
        }
        if (padId < 0) {
            throw new IllegalArgumentException("padId must be a token id, found " + padId);
        }
    }

    // Records compare arrays by identity; two batches with equal contents are the same batch.
    @Override
    public boolean equals(Object other) {
        return other instanceof Batch batch && batchSize == batch.batchSize && seqLen == batch.seqLen
                && Arrays.equals(inputIds, batch.inputIds) && Arrays.equals(labels, batch.labels);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels)) + batchSize * 7919 + seqLen;
    }

    @Override
    public String toString() {
        return "Batch[" + batchSize + " × " + seqLen + ", inputIds=" + Arrays.toString(inputIds)
                + ", labels=" + Arrays.toString(labels) + "]";
    }
}
