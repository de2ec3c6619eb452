package dev.loraflow.core.safetensors;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Conversions between float32 and the two 16-bit float formats checkpoints use. Both directions
 * round to nearest, ties to even, as PyTorch's {@code tensor.to(torch.float16 / torch.bfloat16)}
 * does.
 */
public final class HalfFloats {

    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    /**
     * As many shorts as {@link FloatVector#SPECIES_PREFERRED} has lanes: the contracted or expanded half of a
     * conversion, for kernels that widen and round with {@link #widenBf16} and {@link #roundToBf16}.
     */
    public static final VectorSpecies<Short> SHORTS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(INTS.length() * Short.SIZE));

    private HalfFloats() {}

    /** The float32 values of a vector of bfloat16 bits, exactly: {@link #fromBf16(short)} lane by lane. */
    public static FloatVector widenBf16(ShortVector halves) {
        // Sign extension fills the upper half, which the shift moves out: the bits end up exactly on top.
        IntVector bits = (IntVector) halves.convertShape(VectorOperators.S2I, INTS, 0);
        return bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** The bfloat16 bits of a vector of float32 values: {@link #toBf16(float)} lane by lane, the same bits. */
    public static ShortVector roundToBf16(FloatVector values) {
        IntVector bits = values.reinterpretAsInts();
        IntVector top = bits.lanewise(VectorOperators.LSHR, 16);
        IntVector rounded = bits.add(top.and(1).add(0x7FFF)).lanewise(VectorOperators.LSHR, 16);
        VectorMask<Integer> nan = values.test(VectorOperators.IS_NAN).cast(INTS);
        IntVector result = rounded.blend(top.or(0x0040), nan);
        return (ShortVector) result.convertShape(VectorOperators.I2S, SHORTS, 0);
    }

    /**
     * dst[i] = {@link #fromBf16} of the little-endian bfloat16 at {@code src} + 2·i, for i in [0, n):
     * a whole tensor's widening, a vector of lanes at a time.
     */
    public static void fromBf16(MemorySegment src, float[] dst, int dstOff, int n) {
        int i = 0;
        for (int bound = INTS.loopBound(n); i < bound; i += INTS.length()) {
            widenBf16(ShortVector.fromMemorySegment(SHORTS, src, 2L * i, ByteOrder.LITTLE_ENDIAN)).intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] = fromBf16(src.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 2L * i));
        }
    }

    /** dst[dstOff + i] = {@link #toBf16}(src[srcOff + i]) for i in [0, n), the same bits, a vector at a time. */
    public static void toBf16(float[] src, int srcOff, short[] dst, int dstOff, int n) {
        int i = 0;
        for (int bound = FLOATS.loopBound(n); i < bound; i += FLOATS.length()) {
            roundToBf16(FloatVector.fromArray(FLOATS, src, srcOff + i)).intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] = toBf16(src[srcOff + i]);
        }
    }

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
