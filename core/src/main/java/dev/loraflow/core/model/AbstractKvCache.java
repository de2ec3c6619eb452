package dev.loraflow.core.model;

import dev.loraflow.core.kernels.CachedAttention;
import java.util.Objects;

/**
 * What every architecture's {@link CausalLanguageModel.KvCache} holds: per layer the keys
 * [Hkv, D, capacity] and values [Hkv, capacity, D] in {@link CachedAttention}'s layout, the length,
 * the attention scratch and the logits returned by a decode. Each model adds the scratch of its blocks.
 */
abstract class AbstractKvCache implements CausalLanguageModel.KvCache {

    /**
     * New tokens per pass through the blocks: a long prefill goes in chunks, so a cache's scratch is
     * bounded whatever its capacity, and 64 rows still fill the matrix multiplies.
     */
    static final int CHUNK_ROWS = 64;

    final int capacity;
    /** Rows of the per-token scratch: min(capacity, {@link #CHUNK_ROWS}). */
    final int chunkRows;
    /** [layers][Hkv·D·capacity]. */
    final float[][] keys;
    /** [layers][Hkv·capacity·D]. */
    final float[][] values;
    /** [H·capacity]: one score row per query head. */
    final float[] scores;
    /** [vocab]: the last decode's logits. */
    final float[] logits;
    int length;

    AbstractKvCache(ModelConfig config, int kvHeads, int capacity) {
        if (capacity <= 0 || capacity > config.maxPositions()) {
            throw new IllegalArgumentException("KV cache capacity " + capacity + " must be in [1, "
                    + config.maxPositions() + "], the model's context");
        }
        this.capacity = capacity;
        this.chunkRows = chunkRows(capacity);
        int layerElements = Math.multiplyExact(Math.multiplyExact(kvHeads, config.headDim()), capacity);
        this.keys = new float[config.numLayers()][layerElements];
        this.values = new float[config.numLayers()][layerElements];
        this.scores = new float[CachedAttention.scratchLength(config.numHeads(), capacity)];
        this.logits = new float[config.vocabSize()];
    }

    /** Rows of the per-token scratch of a cache of {@code capacity} tokens. */
    static int chunkRows(int capacity) {
        return Math.min(capacity, CHUNK_ROWS);
    }

    /**
     * Bytes of what this class allocates for a cache of {@code capacity} tokens with {@code kvHeads} key/value heads; each
     * architecture's cache adds its scratch (their {@code kvCacheBytes}).
     */
    static long bytes(ModelConfig config, int kvHeads, int capacity) {
        return 4 * (2L * config.numLayers() * kvHeads * config.headDim() * capacity
                + CachedAttention.scratchLength(config.numHeads(), capacity) + config.vocabSize());
    }

    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public int length() {
        return length;
    }

    @Override
    public void reset() {
        length = 0;
    }

    /** Checks a decode's tokens before anything is written, so that a failed call leaves the cache as it was. */
    void checkAppend(int[] tokens, int vocab) {
        Objects.requireNonNull(tokens, "tokens");
        if (tokens.length == 0) {
            throw new IllegalArgumentException("decode needs at least one token");
        }
        if (tokens.length > capacity - length) {
            throw new IllegalArgumentException(tokens.length + " tokens do not fit in the KV cache: it holds " + length
                    + " of " + capacity);
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab) {
                throw new IllegalArgumentException("token id " + tokens[i] + " at index " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
    }
}
