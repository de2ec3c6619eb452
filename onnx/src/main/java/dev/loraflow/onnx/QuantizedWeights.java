package dev.loraflow.onnx;

import java.lang.reflect.Array;
import java.util.List;
import java.util.function.IntFunction;

/**
 * The arithmetic of the quantized exports: int8 per output channel, and int4 blocks in the layout of
 * ONNX Runtime's {@code com.microsoft.MatMulNBits} as its MatMul4BitsQuantizer (MLAS's blockwise
 * quantizer) writes them.
 */
final class QuantizedWeights {

    static final int INT8_MAX = 127;
    static final int INT4_LEVELS = 15;
    /** The int4 zero point when none is stored (MatMulNBits' default, 2^(bits−1)). */
    static final int INT4_DEFAULT_ZERO_POINT = 8;

    private QuantizedWeights() {}

    /**
     * A linear weight read as w(k, n), k the input and n the output feature, whatever its stored layout.
     *
     * @param inMajor stored [in, out] (GPT-2's Conv1D), else [out, in] (nn.Linear, token embeddings)
     */
    record Matrix(float[] values, int in, int out, boolean inMajor) {
        Matrix {
            if ((long) in * out != values.length) {
                throw new IllegalArgumentException("[" + in + " in, " + out + " out] does not hold " + values.length + " values");
            }
        }

        float get(int k, int n) {
            return inMajor ? values[k * out + n] : values[n * in + k];
        }
    }

    /**
     * @param values int8 [in, out], the B of MatMulInteger
     * @param scales [out]: w(k, n) ≈ values[k, n]·scales[n]
     */
    record Int8Columns(byte[] values, float[] scales) {}

    /** Symmetric int8 per output channel: scale = max_k |w(k, n)| / 127, q = round(w / scale). */
    static Int8Columns int8(Matrix w) {
        float[] scales = new float[w.out()];
        byte[] values = new byte[w.in() * w.out()];
        // Tiles of output channels, so that an [out, in] source (a 32000-row embedding) is read a cache line at a
        // time rather than one float per line, and the [in, out] result written in runs of TILE bytes.
        for (int first = 0; first < w.out(); first += TILE) {
            int end = Math.min(w.out(), first + TILE);
            for (int k = 0; k < w.in(); k++) {
                for (int n = first; n < end; n++) {
                    scales[n] = Math.max(scales[n], Math.abs(w.get(k, n)));
                }
            }
            for (int n = first; n < end; n++) {
                scales[n] /= INT8_MAX;
            }
            for (int k = 0; k < w.in(); k++) {
                for (int n = first; n < end; n++) {
                    float scale = scales[n];
                    values[k * w.out() + n] = scale == 0 ? 0
                            : (byte) Math.clamp(Math.round(w.get(k, n) / scale), -INT8_MAX, INT8_MAX);
                }
            }
        }
        return new Int8Columns(values, scales);
    }

    /**
     * The int8 weights of several matrices over the same input, their output channels side by side in the
     * given order: one [in, Σ out] MatMulInteger operand, each channel keeping its own scale.
     */
    static Int8Columns int8SideBySide(List<Int8Columns> parts) {
        int in = parts.getFirst().values().length / parts.getFirst().scales().length;
        int out = parts.stream().mapToInt(part -> part.scales().length).sum();
        byte[] values = new byte[in * out];
        float[] scales = new float[out];
        int column = 0;
        for (Int8Columns part : parts) {
            int width = part.scales().length;
            if ((long) in * width != part.values().length) {
                throw new IllegalArgumentException("side by side int8 weights need the same input size");
            }
            for (int k = 0; k < in; k++) {
                System.arraycopy(part.values(), k * width, values, k * out + column, width);
            }
            System.arraycopy(part.scales(), 0, scales, column, width);
            column += width;
        }
        return new Int8Columns(values, scales);
    }

    /** Output channels quantized together: 64 source rows stay in cache while the input dimension is walked. */
    private static final int TILE = 64;

    /**
     * MatMulNBits' inputs for 4 bits.
     *
     * @param packed     uint8 [out][blocks][blockSize / 2]: block b of output n holds w(b·blockSize + i, n) in
     *                   byte i/2, even i in the low nibble; the input dimension is zero-padded to whole blocks
     * @param scales     [out · blocks], output-major
     * @param zeroPoints uint8 [out][ceil(blocks / 2)], block 2j in the low nibble of byte j, 2j+1 in the high;
     *                   null when symmetric (every zero point 8)
     */
    record Int4Blocks(byte[] packed, float[] scales, byte[] zeroPoints, int blocks, int blockSize) {

        int blobBytes() {
            return blockSize / 2;
        }

        int zeroPointBytesPerColumn() {
            return (blocks + 1) / 2;
        }
    }

    /**
     * Blockwise 4 bits as MLAS quantizes: symmetric, scale = m / −8 where m is the block's value of largest
     * magnitude, zero point 8; with zero points, min and max widened to include 0, scale = (max − min) / 15,
     * zero point = round(−min / scale) in 0..15. Then q = clamp(round(w / scale + zero point), 0, 15).
     */
    static Int4Blocks int4(Matrix w, int blockSize, boolean zeroPoints) {
        int blocks = (w.in() + blockSize - 1) / blockSize;
        int blob = blockSize / 2;
        byte[] packed = new byte[w.out() * blocks * blob];
        float[] scales = new float[w.out() * blocks];
        int zeroPointBytes = (blocks + 1) / 2;
        byte[] points = zeroPoints ? new byte[w.out() * zeroPointBytes] : null;
        for (int n = 0; n < w.out(); n++) {
            for (int b = 0; b < blocks; b++) {
                int first = b * blockSize;
                int end = Math.min(w.in(), first + blockSize);
                float min = 0;
                float max = 0;
                for (int k = first; k < end; k++) {
                    float v = w.get(k, n);
                    min = Math.min(min, v);
                    max = Math.max(max, v);
                }
                float scale;
                int zeroPoint;
                if (zeroPoints) {
                    scale = (max - min) / INT4_LEVELS;
                    zeroPoint = scale == 0 ? 0 : (int) Math.clamp(roundHalfAway(-min / scale), 0, INT4_LEVELS);
                    points[n * zeroPointBytes + b / 2] |= (byte) (zeroPoint << (4 * (b % 2)));
                } else {
                    float largest = Math.abs(max) > Math.abs(min) ? max : min;
                    scale = largest / -INT4_DEFAULT_ZERO_POINT;
                    zeroPoint = INT4_DEFAULT_ZERO_POINT;
                }
                scales[n * blocks + b] = scale;
                float reciprocal = scale == 0 ? 0 : 1 / scale;
                int base = (n * blocks + b) * blob;
                for (int i = 0; i < blockSize; i++) {
                    float v = first + i < end ? w.get(first + i, n) : 0;
                    int q = (int) Math.clamp(roundHalfAway(v * reciprocal + zeroPoint), 0, INT4_LEVELS);
                    packed[base + i / 2] |= (byte) (q << (4 * (i % 2)));
                }
            }
        }
        return new Int4Blocks(packed, scales, points, blocks, blockSize);
    }

    /**
     * The int4 blocks of several matrices over the same input, their output channels side by side in the given
     * order: MatMulNBits' inputs are output-major, so each part's packed bytes, scales and zero points follow the
     * previous part's.
     */
    static Int4Blocks int4SideBySide(List<Int4Blocks> parts) {
        Int4Blocks first = parts.getFirst();
        for (Int4Blocks part : parts) {
            if (part.blocks() != first.blocks() || part.blockSize() != first.blockSize()
                    || (part.zeroPoints() == null) != (first.zeroPoints() == null)) {
                throw new IllegalArgumentException("side by side int4 weights need the same input size, blocks and zero points");
            }
        }
        return new Int4Blocks(concatenate(parts.stream().map(Int4Blocks::packed).toList(), byte[]::new),
                concatenate(parts.stream().map(Int4Blocks::scales).toList(), float[]::new),
                first.zeroPoints() == null ? null
                        : concatenate(parts.stream().map(Int4Blocks::zeroPoints).toList(), byte[]::new),
                first.blocks(), first.blockSize());
    }

    /** The arrays (byte[] or float[]) one after another in one new array made by {@code create}. */
    private static <A> A concatenate(List<A> arrays, IntFunction<A> create) {
        A all = create.apply(arrays.stream().mapToInt(Array::getLength).sum());
        int at = 0;
        for (A array : arrays) {
            int length = Array.getLength(array);
            System.arraycopy(array, 0, all, at, length);
            at += length;
        }
        return all;
    }

    /** C's roundf: halves away from zero (Math.round rounds them up). */
    private static float roundHalfAway(float x) {
        return Math.signum(x) * (float) Math.floor(Math.abs(x) + 0.5f);
    }
}
