package dev.loraflow.core.random;

/**
 * A seeded random stream (SplitMix64) whose whole state is one {@code long}, so a training state can
 * save it and a resumed run continues with exactly the numbers an uninterrupted run would have drawn.
 * {@link #hash} is the same mixing function used statelessly, for counter-based streams that give each
 * element its own number whatever the thread that computes it.
 */
public final class Rng {

    private static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;

    private long state;

    public Rng(long seed) {
        this.state = seed;
    }

    /** The state to save; {@code new Rng(state())} continues the stream exactly. */
    public long state() {
        return state;
    }

    /** Moves the stream on by {@code draws} numbers at once, as that many {@link #nextLong} calls would. */
    public void skip(long draws) {
        state += draws * GOLDEN_GAMMA;
    }

    public long nextLong() {
        state += GOLDEN_GAMMA;
        return hash(state);
    }

    /** Uniform in [0, 1) with 24 random bits, every value exactly representable as a float. */
    public float nextFloat() {
        return (nextLong() >>> 40) * 0x1.0p-24f;
    }

    /** Uniform in [0, 1) with 53 random bits. */
    public double nextDouble() {
        return (nextLong() >>> 11) * 0x1.0p-53;
    }

    /** Uniform in [-bound, bound). */
    public float nextUniform(float bound) {
        return (float) ((2 * nextDouble() - 1) * bound);
    }

    /** Standard normal, by Box–Muller on two draws. */
    public double nextGaussian() {
        double u1 = 1.0 - nextDouble();
        double u2 = nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }

    /** SplitMix64's finaliser: a bijective mix of all 64 bits. */
    public static long hash(long value) {
        long z = value;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** The {@code index}-th number of the counter-based stream {@code key}: pure, so any thread may compute it. */
    public static long hash(long key, long index) {
        return hash(key + (index + 1) * GOLDEN_GAMMA);
    }
}
