package dev.loraflow.core.kernels;

import dev.loraflow.core.random.Rng;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Inverted dropout with a counter-based mask: element i of a call keyed {@code key} is kept when the
 * i-th number of that key's stream says so, so the mask is a pure function of (key, i) — the same
 * whatever the thread split, and reproducible from the key alone. One 64-bit draw serves two elements,
 * 24 bits each. The forward also records the mask as bits (n/8 bytes), so the backward needs neither
 * the dropped values nor the hashing again.
 */
public final class Dropout {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Long> LONGS = LongVector.SPECIES_PREFERRED;
    private static final int LANES = FLOATS.length();
    private static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;
    private static final int PARALLEL_GRAIN = 1 << 16;
    /** SPREAD[b] has bit t of b at bit 2t: interleaves the even and odd elements' keep bits. */
    private static final int[] SPREAD = new int[256];

    static {
        for (int b = 0; b < 256; b++) {
            int spread = 0;
            for (int t = 0; t < 8; t++) {
                spread |= ((b >>> t) & 1) << (2 * t);
            }
            SPREAD[b] = spread;
        }
    }

    private Dropout() {}

    /** Words needed for the mask of n elements. */
    public static int maskWords(int n) {
        return (n + 63) >>> 6;
    }

    /**
     * out = x ⊙ keep / (1 − p), and mask (≥ {@link #maskWords}(n) longs) gets bit i set when element i is
     * kept. x [n], out [n]; out may be x. p in [0, 1).
     */
    public static void forward(float[] x, float[] out, int n, float p, long key, long[] mask) {
        checkProbability(p);
        if (mask.length < maskWords(n)) {
            throw new IllegalArgumentException("dropout mask holds " + mask.length + " words, " + n + " elements need " + maskWords(n));
        }
        float scale = 1f / (1f - p);
        int threshold = threshold(p);
        // chunks of 64 elements own whole mask words, so threads never share a word
        Parallel.forRange(n, PARALLEL_GRAIN, 64, (from, to) -> forwardRange(x, out, from, to, scale, threshold, key, mask));
    }

    private static void forwardRange(float[] x, float[] out, int from, int to, float scale, int threshold, long key, long[] mask) {
        java.util.Arrays.fill(mask, from >>> 6, maskWords(to), 0L);
        int i = from;
        for (int bound = from + (to - from) / LANES * LANES; i < bound; i += LANES) {
            long bits = keepBits(key, i, threshold);
            mask[i >>> 6] |= bits << (i & 63);
            VectorMask<Float> keep = VectorMask.fromLong(FLOATS, bits);
            FloatVector.zero(FLOATS).blend(FloatVector.fromArray(FLOATS, x, i).mul(scale), keep).intoArray(out, i);
        }
        for (; i < to; i++) {
            boolean kept = kept(key, i, threshold);
            if (kept) {
                mask[i >>> 6] |= 1L << (i & 63);
            }
            out[i] = kept ? x[i] * scale : 0f;
        }
    }

    /**
     * dx (+)= dout ⊙ keep / (1 − p), with the mask the forward recorded. dout [n], dx [n].
     */
    public static void backward(float[] dout, float[] dx, int n, float p, long[] mask, boolean accumulate) {
        checkProbability(p);
        float scale = 1f / (1f - p);
        Parallel.forRange(n, PARALLEL_GRAIN, 64, (from, to) -> {
            int i = from;
            for (int bound = from + (to - from) / LANES * LANES; i < bound; i += LANES) {
                long bits = (mask[i >>> 6] >>> (i & 63)) & laneBits();
                VectorMask<Float> keep = VectorMask.fromLong(FLOATS, bits);
                FloatVector grad = FloatVector.zero(FLOATS).blend(FloatVector.fromArray(FLOATS, dout, i).mul(scale), keep);
                if (accumulate) {
                    grad = grad.add(FloatVector.fromArray(FLOATS, dx, i));
                }
                grad.intoArray(dx, i);
            }
            for (; i < to; i++) {
                float grad = ((mask[i >>> 6] >>> (i & 63)) & 1L) != 0 ? dout[i] * scale : 0f;
                dx[i] = accumulate ? dx[i] + grad : grad;
            }
        });
    }

    /** Keep bits of elements [start, start + LANES): LANES/2 draws hashed at once, two elements each. */
    private static long keepBits(long key, int start, int threshold) {
        long firstDraw = start >>> 1;
        LongVector counters = LongVector.broadcast(LONGS, key + (firstDraw + 1) * GOLDEN_GAMMA)
                .add(LongVector.zero(LONGS).addIndex(1).mul(GOLDEN_GAMMA));
        LongVector z = counters;
        z = z.lanewise(VectorOperators.XOR, z.lanewise(VectorOperators.LSHR, 30)).mul(0xBF58476D1CE4E5B9L);
        z = z.lanewise(VectorOperators.XOR, z.lanewise(VectorOperators.LSHR, 27)).mul(0x94D049BB133111EBL);
        z = z.lanewise(VectorOperators.XOR, z.lanewise(VectorOperators.LSHR, 31));
        long even = z.lanewise(VectorOperators.LSHR, 40).compare(VectorOperators.GE, threshold).toLong();
        long odd = z.lanewise(VectorOperators.LSHR, 8).and(0xFFFFFFL).compare(VectorOperators.GE, threshold).toLong();
        long bits = 0;
        for (int shift = 0; shift < LONGS.length(); shift += 8) {
            long spread = SPREAD[(int) (even >>> shift) & 0xFF] | (long) SPREAD[(int) (odd >>> shift) & 0xFF] << 1;
            bits |= spread << (2 * shift);
        }
        return bits;
    }

    private static long laneBits() {
        return LANES == 64 ? -1L : (1L << LANES) - 1;
    }

    /** Whether element {@code index} of the call keyed {@code key} survives: the scalar definition. */
    static boolean kept(long key, int index, int threshold) {
        long bits = Rng.hash(key, index >>> 1);
        int draw = (int) ((index & 1) == 0 ? bits >>> 40 : (bits >>> 8) & 0xFFFFFF);
        return draw >= threshold;
    }

    static int threshold(float p) {
        return (int) Math.round(p * (double) (1 << 24));
    }

    private static void checkProbability(float p) {
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + p);
        }
    }
}
