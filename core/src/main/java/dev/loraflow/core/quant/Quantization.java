package dev.loraflow.core.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.peft.LoraAdapterConfig;
import java.lang.foreign.Arena;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * How the frozen linear weights of a base model are held while an adapter trains on it: as stored
 * ({@link #NONE}), in QLoRA's 4-bit NormalFloat ({@link #NF4}, with the absmaxes double-quantized), or in
 * 8 bits per output channel ({@link #INT8}). Embeddings, norms and the output head are never quantized.
 */
public enum Quantization {
    NONE,
    NF4,
    INT8;

    /**
     * The adapter_config.json key that records the base's quantization of a QLoRA adapter. PEFT (0.14 and
     * later) ignores keys it does not know, with a warning; the key is written only for a quantized base,
     * so a plain LoRA adapter's config stays exactly PEFT's.
     */
    public static final String ADAPTER_CONFIG_KEY = "loraflow_base_quantization";

    /** What {@code config} records, NONE when it records nothing. */
    public static Quantization recordedIn(LoraAdapterConfig config) {
        JsonNode value = config.otherKeys().get(ADAPTER_CONFIG_KEY);
        return value == null || !value.isTextual() ? NONE : parse(value.asText());
    }

    /** {@code config} recording this quantization (or none). */
    public LoraAdapterConfig recordIn(LoraAdapterConfig config) {
        Map<String, JsonNode> others = new LinkedHashMap<>(config.otherKeys());
        others.remove(ADAPTER_CONFIG_KEY);
        if (this != NONE) {
            others.put(ADAPTER_CONFIG_KEY, TextNode.valueOf(toString()));
        }
        return config.toBuilder().otherKeys(others).build();
    }

    /** {@code none}, {@code nf4} or {@code int8}, in any case. */
    public static Quantization parse(String text) {
        for (Quantization value : values()) {
            if (value.name().equalsIgnoreCase(text)) {
                return value;
            }
        }
        throw new IllegalArgumentException("quantization must be none, nf4 or int8, got '" + text + "'");
    }

    /** {@code weight} in this form; NONE returns it as it is. */
    public FrozenMatrix apply(FrozenMatrix weight, Arena arena) {
        return switch (this) {
            case NONE -> weight;
            case NF4 -> Nf4Matrix.quantize(weight, true, arena);
            case INT8 -> Int8Matrix.quantize(weight, arena);
        };
    }

    /** Bytes a [rows, cols] weight takes in this form, given the bytes per element it is stored with. */
    public long bytes(long rows, long cols, int storedElementBytes) {
        long count = rows * cols;
        return switch (this) {
            case NONE -> count * storedElementBytes;
            case NF4 -> (count + 1) / 2 + (count + Nf4Matrix.BLOCK - 1) / Nf4Matrix.BLOCK
                    + 4 * ((count + Nf4Matrix.BLOCK * Nf4Matrix.ABSMAX_BLOCK - 1) / (Nf4Matrix.BLOCK * Nf4Matrix.ABSMAX_BLOCK));
            case INT8 -> count + 4 * rows;
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
