package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** {@link CausalLanguageModel#decode} against the full-sequence forward, on each architecture. */
class KvCacheDecodeTest {

    /** Longer than {@link AbstractKvCache#CHUNK_ROWS}, so that one prefill goes through the blocks in two chunks. */
    private static final int SEQ = 70;

    static Stream<Arguments> models() {
        return Stream.of(Arguments.of("gpt2", TinyModels.GPT2), Arguments.of("llama", TinyModels.LLAMA));
    }

    static Stream<Arguments> modelsMergedOrNot() {
        return models().flatMap(arguments -> Stream.of(false, true)
                .map(merged -> Arguments.of(arguments.get()[0], arguments.get()[1], merged)));
    }

    /**
     * |decoded − forward| ≤ 1e-5·(|forward| + ‖forward row‖∞): relative to the row's scale, as a logit
     * near zero is a difference of terms of the row's size.
     */
    private static void assertRowClose(float[] forwardLogits, int position, float[] decoded, String what) {
        int vocab = decoded.length;
        float[] expected = Arrays.copyOfRange(forwardLogits, position * vocab, (position + 1) * vocab);
        double scale = 0;
        for (float value : expected) {
            scale = Math.max(scale, Math.abs(value));
        }
        for (int v = 0; v < vocab; v++) {
            double tolerance = 1e-5 * (Math.abs(expected[v]) + scale);
            if (!(Math.abs(decoded[v] - expected[v]) <= tolerance)) {
                fail(what + ", position " + position + ", logit " + v + ": forward " + expected[v] + ", decode "
                        + decoded[v] + " (tolerance " + tolerance + ")");
            }
        }
    }

    @ParameterizedTest(name = "{0} merged={2}")
    @MethodSource("modelsMergedOrNot")
    void decodeLogitsEqualTheForwardAtEveryPosition(String arch, ModelConfig config, boolean merged) {
        CausalLanguageModel model = TinyModels.adapted(config, 3);
        if (merged) {
            model.merge();
        }
        int[] ids = TinyModels.randomIds(SEQ, config.vocabSize(), 4);
        float[] expected = TinyModels.forwardLogits(model, ids);
        CausalLanguageModel.KvCache cache = model.newKvCache(config.maxPositions());

        for (int t = 0; t < SEQ; t++) {
            float[] logits = model.decode(cache, new int[] {ids[t]});
            assertRowClose(expected, t, logits, "token by token");
            assertEquals(t + 1, cache.length());
        }

        cache.reset();
        assertEquals(0, cache.length());
        assertRowClose(expected, SEQ - 1, model.decode(cache, ids), "one prefill");
        assertEquals(SEQ, cache.length());

        cache.reset();
        int[] chunks = {3, 1, 7, 2, 8, 49};
        int position = 0;
        for (int size : chunks) {
            float[] logits = model.decode(cache, Arrays.copyOfRange(ids, position, position + size));
            position += size;
            assertRowClose(expected, position - 1, logits, "chunks " + Arrays.toString(chunks));
        }
        assertEquals(SEQ, position);
    }

    /** Decode runs no dropout, while the adapters it runs through have some. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void theAdaptersChangeTheDecodedLogitsAndDropoutDoesNot(String arch, ModelConfig config) {
        CausalLanguageModel adapted = TinyModels.adapted(config, 5);
        CausalLanguageModel base = CausalLanguageModel.create(config, TinyModels.weights(config, 5), null, 0);
        assertTrue(adapted.loraConfig().loraDropout() > 0, "the check needs adapters with dropout");
        int[] ids = TinyModels.randomIds(9, config.vocabSize(), 6);
        float[] first = adapted.decode(adapted.newKvCache(9), ids).clone();
        float[] again = adapted.decode(adapted.newKvCache(9), ids);
        assertTrue(Arrays.equals(first, again), "two decodes of the same tokens differ: dropout or stale state");
        float[] withoutAdapters = base.decode(base.newKvCache(9), ids);
        assertTrue(Math.abs(first[0] - withoutAdapters[0]) > 1e-4, "the adapters' B is random, so they must show");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void returnsTheCachesOwnLogitsBuffer(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 7);
        CausalLanguageModel.KvCache cache = model.newKvCache(4);
        float[] logits = model.decode(cache, new int[] {1, 2});
        assertEquals(config.vocabSize(), logits.length);
        assertSame(logits, model.decode(cache, new int[] {3}));
        assertEquals(4, cache.capacity());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void rejectsBadCallsAndLeavesTheCacheAsItWas(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 8);
        int vocab = config.vocabSize();
        IllegalArgumentException tooLarge = assertThrows(IllegalArgumentException.class,
                () -> model.newKvCache(config.maxPositions() + 1));
        assertTrue(tooLarge.getMessage().contains("context"), tooLarge.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.newKvCache(0));

        int[] ids = TinyModels.randomIds(5, vocab, 9);
        float[] expected = TinyModels.forwardLogits(model, ids);
        CausalLanguageModel.KvCache cache = model.newKvCache(5);
        model.decode(cache, Arrays.copyOf(ids, 3));

        IllegalArgumentException full = assertThrows(IllegalArgumentException.class,
                () -> model.decode(cache, new int[] {1, 2, 3}));
        assertTrue(full.getMessage().contains("holds 3 of 5"), full.getMessage());
        IllegalArgumentException outside = assertThrows(IllegalArgumentException.class,
                () -> model.decode(cache, new int[] {1, vocab}));
        assertTrue(outside.getMessage().contains("token id " + vocab + " at index 1"), outside.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.decode(cache, new int[] {-1}));
        assertThrows(IllegalArgumentException.class, () -> model.decode(cache, new int[0]));
        assertThrows(NullPointerException.class, () -> model.decode(cache, null));
        assertEquals(3, cache.length());
        assertRowClose(expected, 4, model.decode(cache, Arrays.copyOfRange(ids, 3, 5)), "after the failed calls");

        CausalLanguageModel sameConfig = TinyModels.adapted(config, 8);
        IllegalArgumentException foreign = assertThrows(IllegalArgumentException.class,
                () -> sameConfig.decode(cache, new int[] {1}));
        assertTrue(foreign.getMessage().contains("another model"), foreign.getMessage());
        models().map(arguments -> (ModelConfig) arguments.get()[1]).filter(other -> other != config).forEach(other -> {
            CausalLanguageModel otherArchitecture = TinyModels.adapted(other, 8);
            assertThrows(IllegalArgumentException.class, () -> otherArchitecture.decode(cache, new int[] {1}));
        });
    }
}
