package dev.loraflow.core.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * A [rows, cols] matrix of 16-bit floats (bfloat16 or IEEE binary16), little-endian and row-major in a
 * {@link MemorySegment} — typically a checkpoint tensor mapped from its file, so the weights never enter
 * the heap. Both formats widen to float32 exactly.
 */
public final class HalfMatrix implements FrozenMatrix {

    /** The two 16-bit float formats. */
    public enum Format { BF16, F16 }

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> SHORTS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.length() * Short.SIZE));
    /** binary16's exponent field (all ones: Inf or NaN), float32's, and 2^(127 − 15), the bias difference. */
    private static final int F16_EXPONENT = 0x7C00;
    private static final int F32_EXPONENT = 0x7F800000;
    private static final float F16_EXPONENT_SCALE = 0x1p112f;
    private static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final MemorySegment data;
    private final int rows;
    private final int cols;
    private final Format format;

    public HalfMatrix(MemorySegment data, int rows, int cols, Format format) {
        if (data.byteSize() != 2L * rows * cols) {
            throw new IllegalArgumentException(rows + "×" + cols + " " + format + " matrix needs " + 2L * rows * cols
                    + " bytes, the segment has " + data.byteSize());
        }
        this.data = data;
        this.rows = rows;
        this.cols = cols;
        this.format = format;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    @Override
    public long bytes() {
        return data.byteSize();
    }

    @Override
    public String format() {
        return format == Format.BF16 ? "bf16" : "f16";
    }

    @Override
    public void widen(int row, int col, int count, float[] dst, int dstOff) {
        long first = (long) row * cols + col;
        int i = 0;
        if (format == Format.BF16) {
            // bfloat16 is the top half of a float32: widen a vector at a time by a 16-bit shift
            for (int bound = count - count % FLOATS.length(); i < bound; i += FLOATS.length()) {
                ShortVector halves = ShortVector.fromMemorySegment(SHORTS, data, 2 * (first + i), ByteOrder.LITTLE_ENDIAN);
                ((IntVector) halves.convertShape(VectorOperators.S2I, INTS, 0))
                        .lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats()
                        .intoArray(dst, dstOff + i);
            }
            for (; i < count; i++) {
                dst[dstOff + i] = Float.intBitsToFloat((data.getAtIndex(U16_LE, first + i) & 0xFFFF) << 16);
            }
        } else {
            // binary16 has no vector conversion in the Vector API: exponent and mantissa are shifted into float32's
            // places and the float scaled by 2^112 (the exponent bias difference), which is exact and makes the
            // subnormals normal; Inf and NaN take float32's all-ones exponent, their payload kept; the sign goes last.
            // The same bits as Float.float16ToFloat (whose compiled form, F16C's instruction, also quiets a
            // signalling NaN).
            for (int bound = count - count % FLOATS.length(); i < bound; i += FLOATS.length()) {
                ShortVector halves = ShortVector.fromMemorySegment(SHORTS, data, 2 * (first + i), ByteOrder.LITTLE_ENDIAN);
                IntVector bits = (IntVector) halves.convertShape(VectorOperators.S2I, INTS, 0);
                IntVector magnitude = bits.and(0x7FFF);
                IntVector shifted = magnitude.lanewise(VectorOperators.LSHL, 13);
                shifted.reinterpretAsFloats().mul(F16_EXPONENT_SCALE).reinterpretAsInts()
                        .blend(shifted.or(F32_EXPONENT), magnitude.compare(VectorOperators.GE, F16_EXPONENT))
                        .or(bits.and(0x8000).lanewise(VectorOperators.LSHL, 16))
                        .reinterpretAsFloats()
                        .intoArray(dst, dstOff + i);
            }
            for (; i < count; i++) {
                dst[dstOff + i] = Float.float16ToFloat(data.getAtIndex(U16_LE, first + i));
            }
        }
    }
}
