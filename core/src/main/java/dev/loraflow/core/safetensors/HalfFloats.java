package dev.loraflow.core.safetensors;

/**
 * Conversions between float32 and the two 16-bit float formats checkpoints use. Both directions
 * round to nearest, ties to even, as PyTorch's {@code tensor.to(torch.float16 / torch.bfloat16)}
 * does.
 */
public final class HalfFloats {

    private HalfFloats() {}

    /** IEEE binary16 bits of {@code value}; overflow goes to infinity, tiny values to subnormals or zero. */
    public static short toF16(float value) {
        return Float.floatToFloat16(value);
    }

    /** The float32 equal to the binary16 {@code bits} (every binary16 value is exact in float32). */
    public static float fromF16(short bits) {
        return Float.float16ToFloat(bits);
    }

    /**
     * bfloat16 bits of {@code value}: the top 16 bits of the float32, rounded to nearest even. A NaN
     * keeps its sign and leading payload bits and is made quiet, because plain truncation could turn
     * a NaN whose payload lies only in the low bits into infinity.
     */
    public static short toBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    /** The float32 equal to the bfloat16 {@code bits}. */
    public static float fromBf16(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }
}
