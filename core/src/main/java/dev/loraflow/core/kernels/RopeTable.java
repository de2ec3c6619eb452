package dev.loraflow.core.kernels;

/**
 * cos and sin of the rotary angles position·θ^(−2i/D), for positions [0, maxPositions) and
 * i ∈ [0, D/2), built once per model so that {@link Rope} allocates nothing per call. Only one half
 * of the head dimension is stored: the Hugging Face layout repeats the same angles for both halves.
 * The angles and their cos/sin are computed in double and rounded once to float.
 *
 * @param maxPositions positions the table covers
 * @param headDim      D, even
 * @param theta        base of the frequencies (10000 in GPT-NeoX and Llama 2, 500000 in Llama 3)
 * @param cos          [maxPositions, D/2]
 * @param sin          [maxPositions, D/2]
 */
public record RopeTable(int maxPositions, int headDim, double theta, float[] cos, float[] sin) {

    /** Checks that the tables match the shape; use {@link #create} to build one. */
    public RopeTable {
        checkShape(maxPositions, headDim, theta);
        int elements = Math.multiplyExact(maxPositions, headDim / 2);
        Bounds.check(cos, 0, elements, "cos");
        Bounds.check(sin, 0, elements, "sin");
    }

    /**
     * The table for positions [0, maxPositions) of a head dimension D.
     *
     * @throws IllegalArgumentException if D is odd or not positive, maxPositions is negative, or θ is
     *                                  not above 1
     */
    public static RopeTable create(int maxPositions, int headDim, double theta) {
        checkShape(maxPositions, headDim, theta);
        double[] inverseFrequencies = new double[headDim / 2];
        for (int i = 0; i < inverseFrequencies.length; i++) {
            inverseFrequencies[i] = inverseFrequency(i, headDim, theta);
        }
        return create(maxPositions, theta, inverseFrequencies);
    }

    /**
     * The table of given inverse frequencies, one per rotation pair (D = 2·their count), for a scaled
     * RoPE (Llama 3's, linear); θ is recorded as the base they were derived from.
     *
     * @throws IllegalArgumentException if there are none, one is not a positive finite number, or θ is not above 1
     */
    public static RopeTable create(int maxPositions, double theta, double[] inverseFrequencies) {
        int headDim = 2 * inverseFrequencies.length;
        checkShape(maxPositions, headDim, theta);
        int half = headDim / 2;
        float[] cos = new float[Math.multiplyExact(maxPositions, half)];
        float[] sin = new float[cos.length];
        for (int i = 0; i < half; i++) {
            double inverseFrequency = inverseFrequencies[i];
            if (!(inverseFrequency > 0) || !Double.isFinite(inverseFrequency)) {
                throw new IllegalArgumentException("inverse frequency " + i + " must be positive, got " + inverseFrequency);
            }
            for (int position = 0; position < maxPositions; position++) {
                double angle = position * inverseFrequency;
                cos[position * half + i] = (float) Math.cos(angle);
                sin[position * half + i] = (float) Math.sin(angle);
            }
        }
        return new RopeTable(maxPositions, headDim, theta, cos, sin);
    }

    /** θ^(−2i/D), the angle per position of rotation pair i. */
    static double inverseFrequency(int i, int headDim, double theta) {
        return 1 / Math.pow(theta, 2.0 * i / headDim);
    }

    private static void checkShape(int maxPositions, int headDim, double theta) {
        if (headDim <= 0 || headDim % 2 != 0) {
            throw new IllegalArgumentException("RoPE needs an even head dimension D > 0, got " + headDim);
        }
        if (maxPositions < 0) {
            throw new IllegalArgumentException("negative maxPositions " + maxPositions);
        }
        if (!(theta > 1)) {
            throw new IllegalArgumentException("RoPE base θ must be above 1, got " + theta);
        }
    }
}
