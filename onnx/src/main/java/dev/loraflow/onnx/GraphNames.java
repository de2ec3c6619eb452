package dev.loraflow.onnx;

/**
 * The exported decoder's input and output names, Optimum's: the one place that defines them, for the
 * exporter that writes the graph and for everything that runs it.
 */
public final class GraphNames {

    public static final String INPUT_IDS = "input_ids";
    public static final String ATTENTION_MASK = "attention_mask";
    public static final String POSITION_IDS = "position_ids";
    public static final String LOGITS = "logits";
    /**
     * The metadata_props key saying how the graph's KV cache is laid out, {@link #KV_CACHE_RIGHT_PADDED} for every
     * graph the exporter writes (see the package's description); graphs without it (older exports, left-padded
     * Concat caches) cannot be run by the engine.
     */
    public static final String KV_CACHE = "kv_cache";
    /** Rows right-padded, read up to each row's length, new tokens written in place when past and present share a buffer. */
    public static final String KV_CACHE_RIGHT_PADDED = "right-padded, GroupQueryAttention";

    private GraphNames() {}

    /** The keys cached before this call, input: [batch, kv_heads, past, head_dim]. */
    public static String pastKey(int layer) {
        return "past_key_values." + layer + ".key";
    }

    public static String pastValue(int layer) {
        return "past_key_values." + layer + ".value";
    }

    /** The keys after this call, past and new, output: [batch, kv_heads, past + sequence, head_dim]. */
    public static String presentKey(int layer) {
        return "present." + layer + ".key";
    }

    public static String presentValue(int layer) {
        return "present." + layer + ".value";
    }
}
