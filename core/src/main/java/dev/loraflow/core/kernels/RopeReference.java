package dev.loraflow.core.kernels;

/**
 * Plain double-precision loops with the same contracts as {@link Rope}: the ground truth the float
 * kernel is tested against. The angles are computed here in double from the table's D and θ, not
 * read from its float cos/sin, so the float table's rounding is part of what the tests measure.
 */
public final class RopeReference {

    private RopeReference() {}

    /**
     * y = rotate(x, positions). x [B, T, H, D], positions [B, T], y [B, T, H, D] written; y may be x.
     */
    public static void forward(double[] x, int xOff, int[] positions, int posOff, RopeTable table,
                               double[] y, int yOff, int batch, int seqLen, int heads) {
        rotate(x, xOff, positions, posOff, table, y, yOff, batch, seqLen, heads, 1, "x", "y");
    }

    /**
     * dx = rotateᵀ(dy), the rotation by the opposite angle. dy [B, T, H, D], positions [B, T],
     * dx [B, T, H, D] written; dx may be dy.
     */
    public static void backward(double[] dy, int dyOff, int[] positions, int posOff, RopeTable table,
                                double[] dx, int dxOff, int batch, int seqLen, int heads) {
        rotate(dy, dyOff, positions, posOff, table, dx, dxOff, batch, seqLen, heads, -1, "dy", "dx");
    }

    private static void rotate(double[] in, int inOff, int[] positions, int posOff, RopeTable table,
                               double[] out, int outOff, int batch, int seqLen, int heads, double sign,
                               String inName, String outName) {
        int headDim = table.headDim();
        int elements = AttentionShapes.elements(batch, seqLen, heads, headDim);
        Bounds.check(in, inOff, elements, inName);
        Bounds.check(out, outOff, elements, outName);
        Rope.checkPositions(positions, posOff, batch * seqLen, table.maxPositions());
        int half = headDim / 2;
        for (int token = 0; token < batch * seqLen; token++) {
            int position = positions[posOff + token];
            for (int h = 0; h < heads; h++) {
                int head = (token * heads + h) * headDim;
                for (int i = 0; i < half; i++) {
                    double angle = position * RopeTable.inverseFrequency(i, headDim, table.theta());
                    double cos = Math.cos(angle);
                    double sin = sign * Math.sin(angle);
                    double x1 = in[inOff + head + i];
                    double x2 = in[inOff + head + half + i];
                    out[outOff + head + i] = x1 * cos - x2 * sin;
                    out[outOff + head + half + i] = x2 * cos + x1 * sin;
                }
            }
        }
    }
}
