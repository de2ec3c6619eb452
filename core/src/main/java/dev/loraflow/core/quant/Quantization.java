package dev.loraflow.core.quant;

import dev.loraflow.core.kernels.FrozenMatrix;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * How the frozen linear weights of a base model are held while an adapter trains on it: as stored
 * ({@link #NONE}), in QLoRA's 4-bit NormalFloat ({@link #NF4}, with the absmaxes double-quantized), or in
 * 8 bits per output channel ({@link #INT8}). Embeddings, norms and the output head are never quantized.
 */
public enum Quantization {
    NONE,
    NF4,
    INT8;

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
