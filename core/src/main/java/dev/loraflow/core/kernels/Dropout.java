package dev.loraflow.core.kernels;

import dev.loraflow.core.random.Rng;

/**
 * Inverted dropout with a counter-based mask: element i of a call keyed {@code key} is kept when the
 * i-th number of that key's stream says so. The mask is therefore a pure function of (key, i) — the
 * backward recomputes it instead of storing it, and the result does not depend on how rows are split
 * over threads.
 */
public final class Dropout {

    private static final int PARALLEL_GRAIN = 1 << 15;

    private Dropout() {}

    /** out = x ⊙ keep / (1 − p). x [n], out [n]; out may be x. p in [0, 1). */
    public static void forward(float[] x, float[] out, int n, float p, long key) {
        checkProbability(p);
        float scale = 1f / (1f - p);
        int threshold = threshold(p);
        Parallel.forRange(n, PARALLEL_GRAIN, 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                out[i] = kept(key, i, threshold) ? x[i] * scale : 0f;
            }
        });
    }

    /** dx (+)= dout ⊙ keep / (1 − p), with the mask of the forward call keyed {@code key}. dout [n], dx [n]. */
    public static void backward(float[] dout, float[] dx, int n, float p, long key, boolean accumulate) {
        checkProbability(p);
        float scale = 1f / (1f - p);
        int threshold = threshold(p);
        Parallel.forRange(n, PARALLEL_GRAIN, 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                float grad = kept(key, i, threshold) ? dout[i] * scale : 0f;
                dx[i] = accumulate ? dx[i] + grad : grad;
            }
        });
    }

    /** Whether element {@code index} survives: one 64-bit draw serves two elements, 24 bits each. */
    static boolean kept(long key, int index, int threshold) {
        long bits = Rng.hash(key, index >>> 1);
        int draw = (int) ((index & 1) == 0 ? bits >>> 40 : (bits >>> 8) & 0xFFFFFF);
        return draw >= threshold;
    }

    private static int threshold(float p) {
        return (int) Math.round(p * (double) (1 << 24));
    }

    private static void checkProbability(float p) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + p);
        }
    }
}
