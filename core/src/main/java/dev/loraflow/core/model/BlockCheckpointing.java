package dev.loraflow.core.model;

/**
 * How a workspace keeps what the backward of its transformer blocks reads: every block's activations
 * (the default), or — with gradient checkpointing — only each block's input, one block's activations
 * at a time, and the block's forward run again just before its backward. Activation memory then grows
 * with one block instead of with the depth, for one extra forward per step.
 *
 * <p>The recomputed forward is the same computation on the same input with the same dropout key, so
 * it writes the same values, and the gradients are bit-identical to those of the non-checkpointed run.
 * The models index their per-block activations by {@link #slot(int)}; the residual stream entering
 * each block (the checkpoint) stays one matrix per block.
 */
final class BlockCheckpointing {

    /** One block's forward: reads the residual entering {@code layer}, writes its slot and the next residual. */
    @FunctionalInterface
    interface BlockForward {
        void run(int layer, boolean training, long dropoutKey);
    }

    /** One block's backward: the gradient of its output into that of its input, reading its slot. */
    @FunctionalInterface
    interface BlockBackward {
        void run(int layer);
    }

    private final int layers;
    private final boolean enabled;
    private boolean training;
    private long dropoutKey;

    BlockCheckpointing(int layers, boolean enabled) {
        this.layers = layers;
        this.enabled = enabled;
    }

    boolean enabled() {
        return enabled;
    }

    /** How many blocks' activations the workspace holds: all of them, or one. */
    int slots() {
        return enabled ? 1 : layers;
    }

    /**
     * The residual stream entering each of {@code layers} blocks and leaving the last, {@code [layers + 1][size]}: a
     * matrix of its own per entry where a backward reads them (the checkpoints), or two that alternate for forward
     * passes alone — a block reads its input and writes the next block's, and nothing reads an earlier one again.
     */
    static float[][] residualStream(int layers, int size, boolean forwardOnly) {
        float[][] stream = new float[layers + 1][];
        for (int i = 0; i < stream.length; i++) {
            stream[i] = !forwardOnly || i < 2 ? new float[size] : stream[i - 2];
        }
        return stream;
    }

    /** Where block {@code layer}'s activations live. */
    int slot(int layer) {
        return enabled ? 0 : layer;
    }

    /** Runs every block forward, remembering the pass's dropout so that a recomputation repeats it. */
    void forward(boolean training, long dropoutKey, BlockForward block) {
        this.training = training;
        this.dropoutKey = dropoutKey;
        for (int layer = 0; layer < layers; layer++) {
            block.run(layer, training, dropoutKey);
        }
    }

    /**
     * Runs the backward of blocks {@code layers − 1} down to {@code firstLayer}; when checkpointing, each
     * block's forward first, from its saved input, to refill the one slot.
     */
    void backward(int firstLayer, BlockForward forward, BlockBackward backward) {
        for (int layer = layers - 1; layer >= firstLayer; layer--) {
            if (enabled) {
                forward.run(layer, training, dropoutKey);
            }
            backward.run(layer);
        }
    }
}
