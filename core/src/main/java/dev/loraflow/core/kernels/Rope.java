package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.VectorMath.LANES;
import static dev.loraflow.core.kernels.VectorMath.SPECIES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Rotary position embeddings in the Hugging Face Llama layout, float32: the head dimension is split
 * into halves x1 = x[0, D/2) and x2 = x[D/2, D), not interleaved pairs, and
 * y = x·cos + rotate_half(x)·sin with rotate_half(x) = (−x2, x1), i.e. each pair (x1_i, x2_i) turns by
 * the angle position·θ^(−2i/D). Positions come per token, so left-padded batches, whose first real
 * token is not at index 0, rotate correctly.
 */
public final class Rope {

    private Rope() {}

    /**
     * y = rotate(x, positions), each head of each token turned by its token's position; y may be x at
     * the same offset.
     *
     * @param x         [B, T, H, D] with D = table.headDim()
     * @param positions [B, T], each in [0, table.maxPositions())
     * @param y         [B, T, H, D], written
     * @throws IllegalArgumentException if an array is too small or a position is outside the table
     */
    public static void forward(float[] x, int xOff, int[] positions, int posOff, RopeTable table,
                               float[] y, int yOff, int batch, int seqLen, int heads) {
        rotate(x, xOff, positions, posOff, table, y, yOff, batch, seqLen, heads, 1f, "x", "y");
    }

    /**
     * dx = rotateᵀ(dy): the rotation by the opposite angle, since a rotation's transpose is its
     * inverse; written (=), and dx may be dy at the same offset.
     *
     * @param dy        [B, T, H, D] with D = table.headDim()
     * @param positions [B, T], as given to the forward
     * @param dx        [B, T, H, D], written
     * @throws IllegalArgumentException as {@link #forward}
     */
    public static void backward(float[] dy, int dyOff, int[] positions, int posOff, RopeTable table,
                                float[] dx, int dxOff, int batch, int seqLen, int heads) {
        rotate(dy, dyOff, positions, posOff, table, dx, dxOff, batch, seqLen, heads, -1f, "dy", "dx");
    }

    /** out1 = in1·cos − sign·in2·sin, out2 = in2·cos + sign·in1·sin per pair. */
    private static void rotate(float[] in, int inOff, int[] positions, int posOff, RopeTable table,
                               float[] out, int outOff, int batch, int seqLen, int heads, float sign,
                               String inName, String outName) {
        int headDim = table.headDim();
        int elements = AttentionShapes.elements(batch, seqLen, heads, headDim);
        int tokens = batch * seqLen;
        Bounds.check(in, inOff, elements, inName);
        Bounds.check(out, outOff, elements, outName);
        checkPositions(positions, posOff, tokens, table.maxPositions());
        int half = headDim / 2;
        int tokenElements = heads * headDim;
        float[] cos = table.cos();
        float[] sin = table.sin();
        VectorMath.forRows(tokens, tokenElements, (from, to) -> {
            for (int token = from; token < to; token++) {
                int angles = positions[posOff + token] * half;
                for (int h = 0; h < heads; h++) {
                    int head = token * tokenElements + h * headDim;
                    rotateHead(in, inOff + head, cos, sin, angles, sign, out, outOff + head, half);
                }
            }
        });
    }

    private static void rotateHead(float[] in, int inHead, float[] cos, float[] sin, int angles, float sign,
                                   float[] out, int outHead, int half) {
        int i = 0;
        for (int bound = SPECIES.loopBound(half); i < bound; i += LANES) {
            FloatVector c = FloatVector.fromArray(SPECIES, cos, angles + i);
            FloatVector s = FloatVector.fromArray(SPECIES, sin, angles + i).mul(sign);
            FloatVector x1 = FloatVector.fromArray(SPECIES, in, inHead + i);
            FloatVector x2 = FloatVector.fromArray(SPECIES, in, inHead + half + i);
            x1.mul(c).sub(x2.mul(s)).intoArray(out, outHead + i);
            x2.mul(c).add(x1.mul(s)).intoArray(out, outHead + half + i);
        }
        if (i < half) {
            VectorMask<Float> tail = SPECIES.indexInRange(i, half);
            FloatVector c = FloatVector.fromArray(SPECIES, cos, angles + i, tail);
            FloatVector s = FloatVector.fromArray(SPECIES, sin, angles + i, tail).mul(sign);
            FloatVector x1 = FloatVector.fromArray(SPECIES, in, inHead + i, tail);
            FloatVector x2 = FloatVector.fromArray(SPECIES, in, inHead + half + i, tail);
            x1.mul(c).sub(x2.mul(s)).intoArray(out, outHead + i, tail);
            x2.mul(c).add(x1.mul(s)).intoArray(out, outHead + half + i, tail);
        }
    }

    /** Every position in [0, maxPositions): checked before anything is written. */
    static void checkPositions(int[] positions, int posOff, int tokens, int maxPositions) {
        Bounds.check(positions, posOff, tokens, "positions");
        for (int token = 0; token < tokens; token++) {
            int position = positions[posOff + token];
            if (position < 0 || position >= maxPositions) {
                throw new IllegalArgumentException("position " + position + " of token " + token
                        + " outside the table's [0, " + maxPositions + ")");
            }
        }
    }
}
