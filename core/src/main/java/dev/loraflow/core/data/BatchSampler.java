package dev.loraflow.core.data;

import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.random.Rng;
import java.util.List;

/**
 * Deals examples into training batches for ever: each epoch visits every example once, in an order
 * drawn from the seed and the epoch number alone, and a batch may run on from one epoch into the next.
 * Since the order at any {@link #position()} is a function of (seed, position), a sampler created at
 * position p yields exactly the batches an uninterrupted one yields after consuming p examples.
 *
 * <p>Unshuffled, every epoch visits the examples in their given order: the order a stream of
 * examples (a Kafka topic) arrives in, so that a run over a stream and a run over its file agree.
 *
 * <p>Each example is cut to its first {@code seqLen} tokens and right-padded with the pad id, whose
 * labels are {@value Softmax#IGNORE_INDEX} (see {@link Batch#pack}). Not thread-safe.
 */
public final class BatchSampler {

    private final List<Example> examples;
    private final int batchSize;
    private final int seqLen;
    private final int padId;
    private final long seed;
    private final boolean shuffle;
    private long position;
    private long permutationEpoch = -1;
    private int[] permutation;

    /**
     * @param padId    input id of padded positions (its labels are ignored, so any valid id will do)
     * @param position examples already consumed, 0 for a fresh run
     */
    public BatchSampler(List<Example> examples, int batchSize, int seqLen, int padId, long seed, long position) {
        this(examples, batchSize, seqLen, padId, seed, true, position);
    }

    /** @param shuffle false for the examples' own order in every epoch (the seed then plays no part) */
    public BatchSampler(List<Example> examples, int batchSize, int seqLen, int padId, long seed, boolean shuffle,
                        long position) {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no examples to sample from");
        }
        Batch.checkShape(batchSize, seqLen, padId);
        if (position < 0) {
            throw new IllegalArgumentException("position must be >= 0, found " + position);
        }
        this.examples = List.copyOf(examples);
        this.batchSize = batchSize;
        this.seqLen = seqLen;
        this.padId = padId;
        this.seed = seed;
        this.shuffle = shuffle;
        this.position = position;
    }

    /** Examples consumed so far, over all epochs: the value to save for resuming. */
    public long position() {
        return position;
    }

    /** The epoch the next example comes from, counting from 0. */
    public long epoch() {
        return position / examples.size();
    }

    public Batch next() {
        Example[] rows = new Example[batchSize];
        for (int row = 0; row < batchSize; row++) {
            rows[row] = exampleAt(position++);
        }
        return Batch.pack(List.of(rows), seqLen, padId);
    }

    private Example exampleAt(long index) {
        if (!shuffle) {
            return examples.get((int) (index % examples.size()));
        }
        long epoch = index / examples.size();
        if (epoch != permutationEpoch) {
            permutation = permutation(examples.size(), Rng.hash(seed, epoch));
            permutationEpoch = epoch;
        }
        return examples.get(permutation[(int) (index % examples.size())]);
    }

    /** A uniformly random permutation of 0..n-1 (Fisher–Yates) drawn from {@code new Rng(key)}. */
    static int[] permutation(int n, long key) {
        Rng rng = new Rng(key);
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            // The high half of a 64 × 64-bit product is uniform in [0, i + 1) up to a bias of (i + 1)/2⁶⁴.
            int j = (int) Math.unsignedMultiplyHigh(rng.nextLong(), i + 1);
            int swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
        return order;
    }
}
