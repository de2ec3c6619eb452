package dev.loraflow.core.generate;

import dev.loraflow.core.random.Rng;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Objects;

/**
 * Picks the next token from a row of logits as Hugging Face's sampling does: the logits divided by the
 * temperature, then top-k, then top-p over the probabilities of what top-k kept, then a draw from the
 * rest in proportion to their probabilities. Temperature 0 is greedy: the argmax, the lowest id on ties.
 *
 * <p>Where HF's top-k keeps every token tied with the k-th, this one keeps exactly k, the lower ids
 * first among equal logits, so that top-k = 1 is greedy decoding. Top-p keeps the most likely tokens
 * while the mass before each is below p: the smallest set whose probability reaches p, and always the
 * most likely token. A draw takes one number from the {@link Rng} seeded by the settings, so the same
 * seed and logits give the same tokens; greedy decoding draws nothing.
 *
 * <p>The buffers are sized for the vocabulary once; sampling allocates nothing. One thread at a time.
 */
public final class Sampler {

    private final SamplingSettings settings;
    private final int vocab;
    private final Rng rng;
    /** [vocab]: ids by descending logit (ascending id on ties) as {@link #sortKey}s, when filtering. */
    private final long[] order;
    /** [vocab]: unnormalised probabilities exp((logit − max)/T) of the candidates, in candidate order. */
    private final double[] weights;
    /** [vocab]: a row read out of a buffer for a draw; null when greedy (read in place). */
    private final float[] row;

    /** @throws IllegalArgumentException if vocab is not positive */
    public Sampler(SamplingSettings settings, int vocab) {
        this.settings = Objects.requireNonNull(settings, "settings");
        if (vocab <= 0) {
            throw new IllegalArgumentException("vocab must be positive, got " + vocab);
        }
        this.vocab = vocab;
        this.rng = new Rng(settings.seed());
        boolean filtering = (settings.topK() > 0 && settings.topK() < vocab) || settings.topP() < 1;
        this.order = filtering && !settings.isGreedy() ? new long[vocab] : null;
        this.weights = settings.isGreedy() ? null : new double[vocab];
        this.row = settings.isGreedy() ? null : new float[vocab];
    }

    /**
     * {@link #sample(float[])} on the row of {@code vocab} logits at {@code offset} (absolute) in {@code logits},
     * e.g. ONNX Runtime's output in native memory: greedy decoding reads it in place, a draw copies the one row.
     *
     * @throws IllegalArgumentException as {@link #sample(float[])}, or if the row lies outside the buffer
     */
    public int sample(FloatBuffer logits, int offset) {
        Objects.requireNonNull(logits, "logits");
        if (offset < 0 || offset > logits.limit() - vocab) {
            throw new IllegalArgumentException("a row of " + vocab + " logits at " + offset + " lies outside a buffer of "
                    + logits.limit());
        }
        if (!settings.isGreedy()) {
            logits.get(offset, row);
            return sample(row);
        }
        int best = offset;
        boolean anyFinite = false;
        for (int i = offset; i < offset + vocab; i++) {
            float logit = logits.get(i);
            if (Float.isNaN(logit) || logit == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("logit of token " + (i - offset) + " is " + logit);
            }
            anyFinite |= logit != Float.NEGATIVE_INFINITY;
            if (logit > logits.get(best)) {
                best = i;
            }
        }
        if (!anyFinite) {
            throw new IllegalArgumentException("every logit is -Infinity: no token can be picked");
        }
        return best - offset;
    }

    /**
     * The next token.
     *
     * @param logits [vocab], not modified; −∞ marks a token that must not be picked
     * @throws IllegalArgumentException if the length is not the vocabulary's, a logit is NaN or +∞, or
     *                                  every logit is −∞
     */
    public int sample(float[] logits) {
        checkLogits(logits);
        if (settings.isGreedy()) {
            return argmax(logits);
        }
        return order == null ? sampleAll(logits) : sampleFiltered(logits);
    }

    /** The index of the largest logit, the lowest on ties. logits [n], n > 0. */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    private int sampleAll(float[] logits) {
        double max = logits[argmax(logits)];
        double total = 0;
        for (int id = 0; id < vocab; id++) {
            weights[id] = Math.exp((logits[id] - max) / settings.temperature());
            total += weights[id];
        }
        return draw(vocab, total);
    }

    private int sampleFiltered(float[] logits) {
        for (int id = 0; id < vocab; id++) {
            order[id] = sortKey(logits[id], id);
        }
        Arrays.sort(order);
        int candidates = settings.topK() > 0 ? Math.min(settings.topK(), vocab) : vocab;
        double max = logits[idOf(order[0])];
        double total = 0;
        for (int c = 0; c < candidates; c++) {
            weights[c] = Math.exp((logits[idOf(order[c])] - max) / settings.temperature());
            total += weights[c];
        }
        if (settings.topP() < 1) {
            // Keep each next most likely token while the mass before it is below p; the first always.
            double threshold = settings.topP() * total;
            double kept = 0;
            int count = 0;
            while (count < candidates && kept < threshold) {
                kept += weights[count++];
            }
            candidates = count;
            total = kept;
        }
        return idOf(order[draw(candidates, total)]);
    }

    /**
     * An index in [0, n) drawn with probability weights[i] / total. total is the sum of the weights in
     * index order, the order the walk adds them in, so the walk ends before the last index whenever
     * the draw falls short of the last weight.
     */
    private int draw(int n, double total) {
        double target = rng.nextDouble() * total;
        double cumulative = 0;
        for (int i = 0; i < n - 1; i++) {
            cumulative += weights[i];
            if (target < cumulative) {
                return i;
            }
        }
        return n - 1;
    }

    /**
     * A long whose ascending order is descending logit, then ascending id: the logit's bits turned into
     * an int that orders like the float, complemented, above the id.
     */
    private static long sortKey(float logit, int id) {
        // + 0f turns −0 into +0, which compare equal as floats but not as bits.
        int bits = Float.floatToIntBits(logit + 0f);
        int ordered = bits ^ ((bits >> 31) & 0x7fffffff);
        return ((long) ~ordered << 32) | id;
    }

    private static int idOf(long sortKey) {
        return (int) sortKey;
    }

    private void checkLogits(float[] logits) {
        Objects.requireNonNull(logits, "logits");
        if (logits.length != vocab) {
            throw new IllegalArgumentException(logits.length + " logits for a vocabulary of " + vocab);
        }
        boolean anyFinite = false;
        for (int id = 0; id < vocab; id++) {
            float logit = logits[id];
            if (Float.isNaN(logit) || logit == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("logit of token " + id + " is " + logit);
            }
            anyFinite |= logit != Float.NEGATIVE_INFINITY;
        }
        if (!anyFinite) {
            throw new IllegalArgumentException("every logit is -Infinity: no token can be picked");
        }
    }
}
