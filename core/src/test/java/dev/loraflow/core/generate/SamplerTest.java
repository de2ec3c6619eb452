package dev.loraflow.core.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.random.Rng;
import java.util.Arrays;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SamplerTest {

    /** Token probabilities at temperature 1; most likely first: 1 (0.4), 3 (0.3), 4 (0.15), 0 (0.1), 2 (0.05). */
    private static final double[] PROBABILITIES = {0.1, 0.4, 0.05, 0.3, 0.15};
    private static final float[] LOGITS = logitsOf(PROBABILITIES);
    private static final int DRAWS = 200_000;

    private static float[] logitsOf(double[] probabilities) {
        float[] logits = new float[probabilities.length];
        for (int i = 0; i < logits.length; i++) {
            // Shifted: only differences of logits matter.
            logits[i] = (float) (Math.log(probabilities[i]) + 2);
        }
        return logits;
    }

    private static SamplingSettings settings(double temperature, int topK, double topP, long seed) {
        return new SamplingSettings(16, temperature, topK, topP, seed, Set.of());
    }

    private static double[] frequencies(SamplingSettings settings, float[] logits) {
        Sampler sampler = new Sampler(settings, logits.length);
        double[] counts = new double[logits.length];
        for (int i = 0; i < DRAWS; i++) {
            counts[sampler.sample(logits)]++;
        }
        for (int id = 0; id < counts.length; id++) {
            counts[id] /= DRAWS;
        }
        return counts;
    }

    /** p_i ∝ weights_i over the kept ids, 0 elsewhere. */
    private static double[] renormalised(double[] weights, int... kept) {
        double total = 0;
        for (int id : kept) {
            total += weights[id];
        }
        double[] expected = new double[weights.length];
        for (int id : kept) {
            expected[id] = weights[id] / total;
        }
        return expected;
    }

    /** Each frequency within 5 standard deviations of a binomial's; a token with probability 0 never drawn. */
    private static void assertDistribution(double[] expected, double[] frequencies) {
        for (int id = 0; id < expected.length; id++) {
            double sigma = Math.sqrt(expected[id] * (1 - expected[id]) / DRAWS);
            assertEquals(expected[id], frequencies[id], 5 * sigma,
                    "token " + id + ": expected " + Arrays.toString(expected) + ", drawn " + Arrays.toString(frequencies));
        }
    }

    @Test
    void greedyIsTheArgmaxAndTheLowestIdOnTies() {
        float[] logits = {1f, 3f, 3f, Float.NEGATIVE_INFINITY, 2f};
        Sampler greedy = new Sampler(SamplingSettings.greedy(4, Set.of()), logits.length);
        assertEquals(1, greedy.sample(logits));
        assertEquals(1, Sampler.argmax(logits));
        float[] negative = {-5f, -0f, 0f, -1f};
        assertEquals(1, new Sampler(SamplingSettings.greedy(4, Set.of()), 4).sample(negative), "-0 and +0 tie: the lower id");
        assertEquals(1, new Sampler(settings(1, 1, 1, 0), 4).sample(negative), "top-k 1 as well");
    }

    /** Top-k = 1 and a tiny top-p leave only the most likely token, ties going to the lower id, as greedy does. */
    @Test
    void topKOneAndTinyTopPAreGreedy() {
        Rng rng = new Rng(1);
        Sampler topK = new Sampler(settings(1.7, 1, 1, 5), 50);
        Sampler topP = new Sampler(settings(1.7, 0, 1e-9, 5), 50);
        for (int trial = 0; trial < 300; trial++) {
            float[] logits = new float[50];
            for (int id = 0; id < logits.length; id++) {
                logits[id] = rng.nextUniform(2f);
            }
            if (trial % 2 == 0) {
                logits[7 + trial % 40] = 2f;
                logits[3 + trial % 40] = 2f;
            }
            int argmax = Sampler.argmax(logits);
            assertEquals(argmax, topK.sample(logits), "top-k 1, trial " + trial);
            assertEquals(argmax, topP.sample(logits), "top-p 1e-9, trial " + trial);
        }
    }

    @Test
    void withoutFilteringTheDrawsFollowTheSoftmax() {
        assertDistribution(PROBABILITIES, frequencies(settings(1, 0, 1, 11), LOGITS));
    }

    @Test
    void temperatureDividesTheLogits() {
        // softmax(logits / 0.5) ∝ p².
        double[] squared = Arrays.stream(PROBABILITIES).map(p -> p * p).toArray();
        assertDistribution(renormalised(squared, 0, 1, 2, 3, 4), frequencies(settings(0.5, 0, 1, 12), LOGITS));
        // Temperature 2: ∝ √p.
        double[] root = Arrays.stream(PROBABILITIES).map(Math::sqrt).toArray();
        assertDistribution(renormalised(root, 0, 1, 2, 3, 4), frequencies(settings(2, 0, 1, 13), LOGITS));
    }

    @Test
    void topKKeepsTheKMostLikely() {
        assertDistribution(renormalised(PROBABILITIES, 1, 3), frequencies(settings(1, 2, 1, 14), LOGITS));
        assertDistribution(PROBABILITIES, frequencies(settings(1, 9, 1, 15), LOGITS));
    }

    @Test
    void topPKeepsTheSmallestSetReachingP() {
        // 0.4 + 0.3 = 0.7 reaches 0.65; 0.75 needs 4 (0.15) as well.
        assertDistribution(renormalised(PROBABILITIES, 1, 3), frequencies(settings(1, 0, 0.65, 16), LOGITS));
        assertDistribution(renormalised(PROBABILITIES, 1, 3, 4), frequencies(settings(1, 0, 0.75, 17), LOGITS));
    }

    /** Hugging Face's order: temperature, then top-k, then top-p over what top-k kept. */
    @Test
    void topPActsAfterTemperatureAndTopK() {
        // Alone, top-p 0.8 keeps 1, 3 and 4 (0.4 + 0.3 < 0.8).
        assertDistribution(renormalised(PROBABILITIES, 1, 3, 4), frequencies(settings(1, 0, 0.8, 18), LOGITS));
        // After top-k 3 the probabilities are 0.47, 0.35, 0.18: 1 and 3 already reach 0.8.
        assertDistribution(renormalised(PROBABILITIES, 1, 3), frequencies(settings(1, 3, 0.8, 19), LOGITS));
        // At temperature 0.5 they are ∝ p²: 0.56, 0.32, 0.08, ...: 1 and 3 reach 0.8.
        double[] squared = Arrays.stream(PROBABILITIES).map(p -> p * p).toArray();
        assertDistribution(renormalised(squared, 1, 3), frequencies(settings(0.5, 0, 0.8, 20), LOGITS));
    }

    @Test
    void aMinusInfinityLogitIsNeverDrawn() {
        float[] logits = LOGITS.clone();
        logits[1] = Float.NEGATIVE_INFINITY;
        double[] withoutOne = PROBABILITIES.clone();
        withoutOne[1] = 0;
        assertDistribution(renormalised(withoutOne, 0, 2, 3, 4), frequencies(settings(1, 0, 1, 21), logits));
        assertDistribution(renormalised(withoutOne, 3, 4), frequencies(settings(1, 2, 1, 22), logits));
    }

    @Test
    void theSameSeedDrawsTheSameTokens() {
        int[] first = draws(settings(1.3, 4, 0.9, 23));
        assertArrayEquals(first, draws(settings(1.3, 4, 0.9, 23)));
        assertFalse(Arrays.equals(first, draws(settings(1.3, 4, 0.9, 24))), "another seed, other tokens");
    }

    private static int[] draws(SamplingSettings settings) {
        Sampler sampler = new Sampler(settings, LOGITS.length);
        int[] tokens = new int[100];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = sampler.sample(LOGITS);
        }
        return tokens;
    }

    @Test
    void rejectsLogitsNoTokenCanComeFrom() {
        Sampler sampler = new Sampler(settings(1, 0, 1, 0), 3);
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> sampler.sample(new float[] {0f, Float.NaN, 1f}));
        assertTrue(nan.getMessage().contains("token 1 is NaN"), nan.getMessage());
        assertThrows(IllegalArgumentException.class, () -> sampler.sample(new float[] {0f, Float.POSITIVE_INFINITY, 1f}));
        float[] masked = new float[3];
        Arrays.fill(masked, Float.NEGATIVE_INFINITY);
        assertThrows(IllegalArgumentException.class, () -> sampler.sample(masked));
        IllegalArgumentException length = assertThrows(IllegalArgumentException.class, () -> sampler.sample(new float[4]));
        assertTrue(length.getMessage().contains("vocabulary of 3"), length.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Sampler(settings(1, 0, 1, 0), 0));
    }

    @Test
    void settingsAreValidated() {
        assertMessage("maxNewTokens", () -> new SamplingSettings(0, 1, 0, 1, 0, Set.of()));
        assertMessage("temperature", () -> new SamplingSettings(1, -0.1, 0, 1, 0, Set.of()));
        assertMessage("temperature", () -> new SamplingSettings(1, Double.NaN, 0, 1, 0, Set.of()));
        assertMessage("temperature", () -> new SamplingSettings(1, Double.POSITIVE_INFINITY, 0, 1, 0, Set.of()));
        assertMessage("topK", () -> new SamplingSettings(1, 1, -1, 1, 0, Set.of()));
        assertMessage("topP", () -> new SamplingSettings(1, 1, 0, 0, 0, Set.of()));
        assertMessage("topP", () -> new SamplingSettings(1, 1, 0, 1.01, 0, Set.of()));
        assertMessage("stop token", () -> new SamplingSettings(1, 1, 0, 1, 0, Set.of(-1)));
        assertThrows(NullPointerException.class, () -> new SamplingSettings(1, 1, 0, 1, 0, null));
        assertTrue(SamplingSettings.greedy(3, Set.of(2)).isGreedy());
        assertFalse(settings(0.1, 0, 1, 0).isGreedy());
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable executable) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, executable);
        assertTrue(e.getMessage().startsWith(expected), e.getMessage());
    }
}
