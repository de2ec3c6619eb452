package dev.loraflow.onnx;

import java.util.Locale;

/**
 * How an export stores its linear weights (the LoRA inputs of an un-merged export stay float32 whatever
 * this says).
 *
 * <ul>
 *   <li>{@link Precision#F32}: float32 MatMul, as before.
 *   <li>{@link Precision#INT8}: weight-only int8, symmetric per output channel (scale = max|w|/127), in the
 *       pattern ONNX Runtime's {@code quantize_dynamic} writes: DynamicQuantizeLinear of the activations,
 *       MatMulInteger, Cast, Mul by the two scales; ONNX Runtime fuses each into one
 *       {@code com.microsoft.DynamicQuantizeMatMul} (int8 × uint8 GEMM).
 *   <li>{@link Precision#INT4}: {@code com.microsoft.MatMulNBits}, 4 bits in blocks of {@code blockSize} along
 *       the input dimension, laid out as ONNX Runtime's MatMul4BitsQuantizer writes it (see
 *       {@link QuantizedWeights#int4}); {@code accuracyLevel} 4 lets the CPU kernel quantize the activations
 *       to int8 per block and run integer dot products.
 * </ul>
 *
 * @param embeddingsInt8 also store the token embedding as int8 per token row and quantize the output head: as
 *                       the linears are (int8, or int4 blocks) when it has its own weight, int8 over the
 *                       embedding's table when tied to it; otherwise both stay float32
 */
public record WeightQuantization(Precision precision, int blockSize, boolean zeroPoints, int accuracyLevel,
                                 boolean embeddingsInt8) {

    public static final int DEFAULT_BLOCK_SIZE = 32;
    /** MatMulNBits' accuracy_level for int8 compute (activations quantized per block). */
    public static final int INT8_COMPUTE = 4;

    public enum Precision {
        F32, INT8, INT4;

        /** As the CLI and the configuration spell it: f32, int8, int4. */
        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }

        public static Precision parse(String label) {
            for (Precision precision : values()) {
                if (precision.label().equals(label.strip().toLowerCase(Locale.ROOT))) {
                    return precision;
                }
            }
            throw new IllegalArgumentException("unknown precision '" + label + "'; use f32, int8 or int4");
        }
    }

    public WeightQuantization {
        if (blockSize < 16 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("int4 block size must be a power of 2 ≥ 16 (32 or 128 usually), got "
                    + blockSize);
        }
        if (accuracyLevel < 0 || accuracyLevel > 4) {
            throw new IllegalArgumentException("accuracy level is 0 to 4, got " + accuracyLevel);
        }
        if (precision == Precision.F32 && embeddingsInt8) {
            throw new IllegalArgumentException("int8 embeddings need an int8 or int4 export");
        }
    }

    /** Float32 weights: no quantization. */
    public static WeightQuantization none() {
        return new WeightQuantization(Precision.F32, DEFAULT_BLOCK_SIZE, false, INT8_COMPUTE, false);
    }

    /** {@code precision} with the defaults: int4 blocks of 32, symmetric (no zero points), int8 compute. */
    public static WeightQuantization of(Precision precision) {
        return new WeightQuantization(precision, DEFAULT_BLOCK_SIZE, false, INT8_COMPUTE, false);
    }

    public WeightQuantization withBlockSize(int value) {
        return new WeightQuantization(precision, value, zeroPoints, accuracyLevel, embeddingsInt8);
    }

    public WeightQuantization withZeroPoints(boolean value) {
        return new WeightQuantization(precision, blockSize, value, accuracyLevel, embeddingsInt8);
    }

    public WeightQuantization withAccuracyLevel(int value) {
        return new WeightQuantization(precision, blockSize, zeroPoints, value, embeddingsInt8);
    }

    public WeightQuantization withEmbeddingsInt8(boolean value) {
        return new WeightQuantization(precision, blockSize, zeroPoints, accuracyLevel, value);
    }

    public boolean quantized() {
        return precision != Precision.F32;
    }

    /**
     * The bytes a linear weight of {@code in × out} takes in the graph: int8 one a weight and a float32 scale per
     * output channel; int4 half a byte a weight, zero-padded to whole blocks, a float32 scale per block (and half
     * a byte of zero point per block with zero points); float32 four a weight.
     */
    public long storedBytes(int in, int out) {
        return switch (precision) {
            case F32 -> 4L * in * out;
            case INT8 -> (long) in * out + 4L * out;
            case INT4 -> {
                long blocks = (in + blockSize - 1) / blockSize;
                yield out * blocks * (blockSize / 2 + 4) + (zeroPoints ? out * ((blocks + 1) / 2) : 0);
            }
        };
    }

    /** For the metadata and the reports, e.g. "int4 block 32 symmetric, embeddings f32". */
    public String describe() {
        if (!quantized()) {
            return "f32";
        }
        String weights = precision == Precision.INT4
                ? "int4 block " + blockSize + (zeroPoints ? " with zero points" : " symmetric") + " accuracy_level " + accuracyLevel
                : "int8 per channel";
        return weights + ", embeddings " + (embeddingsInt8 ? "int8" : "f32");
    }
}
