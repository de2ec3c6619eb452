package dev.loraflow.core.quant;

import dev.loraflow.core.kernels.FrozenMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.stream.IntStream;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * A frozen weight in QLoRA's 4-bit NormalFloat (NF4), laid out as bitsandbytes lays it out: the matrix
 * flattened row-major, cut into blocks of {@value #BLOCK} values, each block scaled by its absolute
 * maximum and every value replaced by the index of the nearest of the {@link #CODE 16 code values}, two
 * indices a byte, the first in the high nibble. With double quantization the block absmaxes are
 * themselves stored in 8 bits: their mean is subtracted and the rest quantized symmetrically in blocks
 * of {@value #ABSMAX_BLOCK}, each with a float32 scale (bitsandbytes uses an 8-bit dynamic map there; the
 * quantized form never leaves the process, so only the idea is shared). Codes and absmaxes live off
 * the heap, in the given arena.
 */
public final class Nf4Matrix implements FrozenMatrix {

    /**
     * The NF4 code values of the QLoRA paper (Dettmers et al., 2023, appendix E), the quantiles of a
     * standard normal distribution normalised to [-1, 1] with an exact zero, as bitsandbytes tabulates them.
     */
    public static final float[] CODE = {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    };
    /** Values sharing one absmax. */
    public static final int BLOCK = 64;
    /** Absmaxes sharing one scale under double quantization. */
    public static final int ABSMAX_BLOCK = 256;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    /** A vector's codes: half as many bytes as it has values, loaded into a byte vector of as many lanes. */
    private static final VectorSpecies<Byte> BYTES =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(FLOATS.length() * Byte.SIZE));
    private static final VectorShuffle<Byte> EACH_BYTE_TWICE = VectorShuffle.fromOp(BYTES, lane -> lane / 2);
    /** The first of a byte's two values is its high nibble. */
    private static final IntVector NIBBLE_SHIFTS =
            IntVector.fromArray(INTS, IntStream.range(0, INTS.length()).map(lane -> lane % 2 == 0 ? 4 : 0).toArray(), 0);
    /** The code table as float32 bits: one vector of 16 lanes, or two of 8; widening by table lookup needs one of those. */
    private static final boolean VECTOR_LOOKUP = FLOATS.length() == 16 || FLOATS.length() == 8;
    private static final IntVector CODE_BITS;
    private static final IntVector CODE_BITS_HIGH;
    /** Each byte's two values, normalised (before the absmax): the high nibble's first. */
    private static final float[] PAIRS = new float[512];

    static {
        for (int b = 0; b < 256; b++) {
            PAIRS[2 * b] = CODE[b >>> 4];
            PAIRS[2 * b + 1] = CODE[b & 15];
        }
        int[] codeBits = new int[CODE.length];
        for (int i = 0; i < CODE.length; i++) {
            codeBits[i] = Float.floatToRawIntBits(CODE[i]);
        }
        CODE_BITS = VECTOR_LOOKUP ? IntVector.fromArray(INTS, codeBits, 0) : null;
        CODE_BITS_HIGH = VECTOR_LOOKUP && FLOATS.length() == 8 ? IntVector.fromArray(INTS, codeBits, 8) : null;
    }

    private final int rows;
    private final int cols;
    private final MemorySegment codes;
    /** One float32 per block, or null under double quantization. */
    private final MemorySegment absmax;
    /** Under double quantization: one signed byte per block, a scale per {@value #ABSMAX_BLOCK} blocks, the mean. */
    private final MemorySegment absmaxCodes;
    private final float[] absmaxScales;
    private final float absmaxMean;

    private Nf4Matrix(int rows, int cols, MemorySegment codes, MemorySegment absmax, MemorySegment absmaxCodes,
                      float[] absmaxScales, float absmaxMean) {
        this.rows = rows;
        this.cols = cols;
        this.codes = codes;
        this.absmax = absmax;
        this.absmaxCodes = absmaxCodes;
        this.absmaxScales = absmaxScales;
        this.absmaxMean = absmaxMean;
    }

    /** The index of the code value nearest to {@code normalized} (in [-1, 1]); a tie goes to the larger. */
    public static int encode(float normalized) {
        int low = 0;
        int high = CODE.length - 1;
        while (high - low > 1) {
            int mid = (low + high) >>> 1;
            if (normalized >= CODE[mid]) {
                low = mid;
            } else {
                high = mid;
            }
        }
        return normalized - CODE[low] < CODE[high] - normalized ? low : high;
    }

    /**
     * Quantizes {@code source} block by block, reading it a row at a time.
     *
     * @param doubleQuantization store the absmaxes in 8 bits too
     * @param arena              where the codes and absmaxes are allocated
     */
    public static Nf4Matrix quantize(FrozenMatrix source, boolean doubleQuantization, Arena arena) {
        int rows = source.rows();
        int cols = source.cols();
        long count = (long) rows * cols;
        long blocks = (count + BLOCK - 1) / BLOCK;
        MemorySegment codes = arena.allocate((count + 1) / 2);
        MemorySegment absmax = arena.allocate(4 * blocks, 4);
        FlatReader reader = new FlatReader(source);
        float[] values = new float[BLOCK];
        for (long block = 0; block < blocks; block++) {
            long start = block * BLOCK;
            int size = (int) Math.min(BLOCK, count - start);
            reader.read(start, size, values);
            float max = 0f;
            for (int i = 0; i < size; i++) {
                max = Math.max(max, Math.abs(values[i]));
            }
            absmax.setAtIndex(FLOAT, block, max);
            float inverse = max == 0f ? 0f : 1f / max;
            for (int i = 0; i < size; i++) {
                long index = start + i;
                int code = encode(values[i] * inverse);
                byte old = codes.get(ValueLayout.JAVA_BYTE, index >>> 1);
                byte packed = (index & 1) == 0 ? (byte) (code << 4 | old & 0x0F) : (byte) (old & 0xF0 | code);
                codes.set(ValueLayout.JAVA_BYTE, index >>> 1, packed);
            }
        }
        if (!doubleQuantization) {
            return new Nf4Matrix(rows, cols, codes, absmax, null, null, 0f);
        }
        double sum = 0;
        for (long block = 0; block < blocks; block++) {
            sum += absmax.getAtIndex(FLOAT, block);
        }
        float mean = (float) (sum / blocks);
        MemorySegment absmaxCodes = arena.allocate(blocks);
        float[] scales = new float[(int) ((blocks + ABSMAX_BLOCK - 1) / ABSMAX_BLOCK)];
        for (int group = 0; group < scales.length; group++) {
            long from = (long) group * ABSMAX_BLOCK;
            long to = Math.min(blocks, from + ABSMAX_BLOCK);
            float max = 0f;
            for (long block = from; block < to; block++) {
                max = Math.max(max, Math.abs(absmax.getAtIndex(FLOAT, block) - mean));
            }
            scales[group] = max / 127f;
            for (long block = from; block < to; block++) {
                float centred = absmax.getAtIndex(FLOAT, block) - mean;
                int code = max == 0f ? 0 : Math.round(centred / scales[group]);
                absmaxCodes.set(ValueLayout.JAVA_BYTE, block, (byte) Math.clamp(code, -127, 127));
            }
        }
        return new Nf4Matrix(rows, cols, codes, null, absmaxCodes, scales, mean);
    }

    /** The scale of block {@code block}, as dequantization uses it. */
    public float absmax(long block) {
        if (absmax != null) {
            return absmax.getAtIndex(FLOAT, block);
        }
        return absmaxCodes.get(ValueLayout.JAVA_BYTE, block) * absmaxScales[(int) (block / ABSMAX_BLOCK)] + absmaxMean;
    }

    /** The code index of element {@code index} of the flattened matrix. */
    public int code(long index) {
        byte packed = codes.get(ValueLayout.JAVA_BYTE, index >>> 1);
        return (index & 1) == 0 ? (packed >>> 4) & 0x0F : packed & 0x0F;
    }

    public boolean doubleQuantized() {
        return absmax == null;
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
        return codes.byteSize() + (absmax != null ? absmax.byteSize() : absmaxCodes.byteSize() + 4L * absmaxScales.length);
    }

    @Override
    public String format() {
        return "nf4";
    }

    @Override
    public void widen(int row, int col, int count, float[] dst, int dstOff) {
        long index = (long) row * cols + col;
        long end = index + count;
        int out = dstOff;
        while (index < end) {
            long block = index / BLOCK;
            long blockEnd = Math.min(end, (block + 1) * BLOCK);
            float scale = absmax(block);
            if ((index & 1) == 1) {
                dst[out++] = CODE[code(index)] * scale;
                index++;
            }
            if (VECTOR_LOOKUP) {
                // a vector of values from half as many bytes: each byte in two lanes, shifted to its high or low
                // nibble, the nibbles looked up in the code table held in registers, times the block's absmax
                FloatVector scales = FloatVector.broadcast(FLOATS, scale);
                long lastLoad = codes.byteSize() - FLOATS.length();   // a load reads a vector's lanes of bytes
                for (; index + FLOATS.length() <= blockEnd && (index >>> 1) <= lastLoad; index += FLOATS.length()) {
                    IntVector nibbles = ((IntVector) ByteVector.fromMemorySegment(BYTES, codes, index >>> 1,
                                    ByteOrder.LITTLE_ENDIAN)
                            .rearrange(EACH_BYTE_TWICE)
                            .convertShape(VectorOperators.B2I, INTS, 0))
                            .lanewise(VectorOperators.LSHR, NIBBLE_SHIFTS)
                            .and(0x0F);
                    IntVector normalized = CODE_BITS_HIGH == null
                            ? nibbles.selectFrom(CODE_BITS)
                            : nibbles.selectFrom(CODE_BITS, CODE_BITS_HIGH);
                    normalized.reinterpretAsFloats().mul(scales).intoArray(dst, out);
                    out += FLOATS.length();
                }
            }
            // whole bytes: both values through one table read
            for (; index + 1 < blockEnd; index += 2) {
                int pair = 2 * (codes.get(ValueLayout.JAVA_BYTE, index >>> 1) & 0xFF);
                dst[out++] = PAIRS[pair] * scale;
                dst[out++] = PAIRS[pair + 1] * scale;
            }
            if (index < blockEnd) {
                dst[out++] = CODE[code(index)] * scale;
                index++;
            }
        }
    }
}
