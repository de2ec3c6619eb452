package dev.loraflow.core.quant;

import dev.loraflow.core.kernels.FrozenMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * A frozen weight in 8 bits with one scale per row (output channel): W[i, j] ≈ q[i, j]·absmax_i/127,
 * q rounded to nearest in [-127, 127] (LLM.int8's per-channel absmax quantization without its outlier
 * columns). The codes live off the heap, in the given arena.
 */
public final class Int8Matrix implements FrozenMatrix {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    /** As many bytes as a float vector has lanes. */
    private static final VectorSpecies<Byte> BYTES =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(FLOATS.length() * Byte.SIZE));

    private final int rows;
    private final int cols;
    private final MemorySegment codes;
    private final float[] scales;

    private Int8Matrix(int rows, int cols, MemorySegment codes, float[] scales) {
        this.rows = rows;
        this.cols = cols;
        this.codes = codes;
        this.scales = scales;
    }

    public static Int8Matrix quantize(FrozenMatrix source, Arena arena) {
        int rows = source.rows();
        int cols = source.cols();
        MemorySegment codes = arena.allocate((long) rows * cols);
        float[] scales = new float[rows];
        float[] row = new float[cols];
        for (int i = 0; i < rows; i++) {
            source.widen(i, 0, cols, row, 0);
            float max = 0f;
            for (float value : row) {
                max = Math.max(max, Math.abs(value));
            }
            scales[i] = max / 127f;
            float inverse = max == 0f ? 0f : 127f / max;
            long base = (long) i * cols;
            for (int j = 0; j < cols; j++) {
                codes.set(ValueLayout.JAVA_BYTE, base + j, (byte) Math.clamp(Math.round(row[j] * inverse), -127, 127));
            }
        }
        return new Int8Matrix(rows, cols, codes, scales);
    }

    /** The scale of row {@code row}: its absmax / 127. */
    public float scale(int row) {
        return scales[row];
    }

    public int code(int row, int col) {
        return codes.get(ValueLayout.JAVA_BYTE, (long) row * cols + col);
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
        return codes.byteSize() + 4L * scales.length;
    }

    @Override
    public String format() {
        return "int8";
    }

    @Override
    public void widen(int row, int col, int count, float[] dst, int dstOff) {
        float scale = scales[row];
        long base = (long) row * cols + col;
        int i = 0;
        // a vector of codes at a time: each converted exactly, then scaled as one float multiply, like the tail
        for (int bound = count - count % FLOATS.length(); i < bound; i += FLOATS.length()) {
            ((FloatVector) ByteVector.fromMemorySegment(BYTES, codes, base + i, ByteOrder.LITTLE_ENDIAN)
                    .convertShape(VectorOperators.B2F, FLOATS, 0))
                    .mul(scale)
                    .intoArray(dst, dstOff + i);
        }
        for (; i < count; i++) {
            dst[dstOff + i] = codes.get(ValueLayout.JAVA_BYTE, base + i) * scale;
        }
    }
}
