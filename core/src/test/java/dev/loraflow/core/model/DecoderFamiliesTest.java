package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.DecoderConfig.Family;
import dev.loraflow.core.peft.LoraAdapterConfig;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Every decoder family against Transformers' semantics: gradients, logits, KV cache, RoPE scaling, windows, caps. */
class DecoderFamiliesTest {

    private static final int SEQ = 9;

    static Stream<Arguments> families() {
        return TinyModels.DECODER_FAMILIES.stream().map(config -> Arguments.of(TinyModels.name(config), config));
    }

    /** Every linear module adapted, rank 2, B random, so every branch changes the output. */
    private static DecoderModel adapted(DecoderConfig config, Map<String, float[]> weights) {
        DecoderModel model = new DecoderModel(config, weights, DecoderModelTest.everyModule(config, 2), 0f, 7);
        DecoderModelTest.randomizeLoraB(model, 2);
        return model;
    }

    private static int[] tokens(int count, long seed) {
        return TinyModels.randomIds(count, 29, seed);
    }

    /**
     * The LoRA gradients against central differences, h = 3e-3: Llama 3's tiny model has an entry curved
     * enough that h = 1e-2 misses the slope by 6 % (the difference quotient moves from −0.012 at
     * h = 3e-2 to −0.025 at 1e-2 towards the analytic −0.0266), which 3e-3 resolves in every family.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void gradientsMatchFiniteDifferences(String name, DecoderConfig config) {
        DecoderModel model = adapted(config, DecoderModelTest.randomWeights(config, 0.5, 1));
        int[] tokens = DecoderModelTest.randomTokens(3);

        int sampled = DecoderModelTest.assertGradientsMatchFiniteDifferences(model, tokens,
                DecoderModelTest.shiftedTargets(tokens), false, 3e-3f);

        int modulesPerBlock = config.family().fusedProjections() ? 4 : 7;
        assertEquals(2 * (2 * modulesPerBlock + 1), sampled);
    }

    /** The training forward's logits and loss on a batch of two, each sequence against the double-precision transcription. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void forwardMatchesTheDoublePrecisionTranscription(String name, DecoderConfig config) {
        Map<String, float[]> weights = DecoderModelTest.randomWeights(config, 0.5, 1);
        DecoderModel model = adapted(config, weights);
        DecoderReference reference = new DecoderReference(model, weights);
        int[] batch = tokens(2 * SEQ, 3);
        int[] labels = batch.clone();
        labels[4] = Softmax.IGNORE_INDEX;
        CausalLanguageModel.Workspace ws = model.newWorkspace(2, SEQ);
        double loss = model.forward(ws, batch, labels, false, 0);

        int vocab = config.vocabSize();
        double expectedLoss = 0;
        int counted = 0;
        for (int b = 0; b < 2; b++) {
            double[][] expected = reference.logits(Arrays.copyOfRange(batch, b * SEQ, (b + 1) * SEQ));
            for (int t = 0; t < SEQ; t++) {
                int row = b * SEQ + t;
                for (int v = 0; v < vocab; v++) {
                    assertEquals(expected[t][v], ws.logits()[row * vocab + v], 2e-4 * (1 + Math.abs(expected[t][v])),
                            name + " logit [" + row + ", " + v + "]");
                }
                if (t + 1 < SEQ && labels[row + 1] != Softmax.IGNORE_INDEX) {
                    double max = Arrays.stream(expected[t]).max().orElseThrow();
                    double sum = Arrays.stream(expected[t]).map(z -> Math.exp(z - max)).sum();
                    expectedLoss += max + Math.log(sum) - expected[t][labels[row + 1]];
                    counted++;
                }
            }
        }
        assertEquals(expectedLoss / counted, loss, 1e-4);
    }

    /** generate's path: a prefill of 4 tokens, then one token at a time, each step's logits against the transcription. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void kvCacheDecodeMatchesTheDoublePrecisionTranscription(String name, DecoderConfig config) {
        Map<String, float[]> weights = DecoderModelTest.randomWeights(config, 0.5, 1);
        DecoderModel model = adapted(config, weights);
        int[] sequence = tokens(SEQ, 5);
        double[][] expected = new DecoderReference(model, weights).logits(sequence);
        CausalLanguageModel.KvCache cache = model.newKvCache(SEQ);

        float[] logits = model.decode(cache, Arrays.copyOf(sequence, 4));
        assertClose(expected[3], logits, name + " prefill");
        for (int t = 4; t < SEQ; t++) {
            logits = model.decode(cache, new int[] {sequence[t]});
            assertClose(expected[t], logits, name + " position " + t);
        }
    }

    private static void assertClose(double[] expected, float[] actual, String what) {
        for (int v = 0; v < expected.length; v++) {
            assertEquals(expected[v], actual[v], 2e-4 * (1 + Math.abs(expected[v])), what + " logit " + v);
        }
    }

    /**
     * A window of 4: positions 0–3 see every earlier position anyway, so their logits are the same bits
     * as without a window; from position 4 on the window cuts, and they change. A window as long as the
     * sequence cuts nothing. The same holds through the KV cache.
     */
    @Test
    void slidingWindowChangesExactlyThePositionsItCuts() {
        DecoderConfig windowed = TinyModels.MISTRAL;
        assertEquals(4, windowed.slidingWindow());
        DecoderConfig full = windowed.withSlidingWindow(0);
        DecoderConfig longWindow = windowed.withSlidingWindow(SEQ);
        Map<String, float[]> weights = DecoderModelTest.randomWeights(windowed, 0.5, 1);
        int[] sequence = tokens(SEQ, 7);
        int vocab = windowed.vocabSize();

        float[] withWindow = TinyModels.forwardLogits(adapted(windowed, weights), sequence);
        float[] withoutWindow = TinyModels.forwardLogits(adapted(full, weights), sequence);
        float[] withLongWindow = TinyModels.forwardLogits(adapted(longWindow, weights), sequence);

        assertArrayEquals(Arrays.copyOf(withoutWindow, 4 * vocab), Arrays.copyOf(withWindow, 4 * vocab));
        for (int t = 4; t < SEQ; t++) {
            assertTrue(maxDifference(withWindow, withoutWindow, t * vocab, vocab) > 1e-3, "position " + t + " cut");
        }
        assertArrayEquals(withoutWindow, withLongWindow);

        float[] decoded = decodeAll(adapted(windowed, weights), sequence);
        float[] decodedFull = decodeAll(adapted(full, weights), sequence);
        assertEquals(0, maxDifference(decoded, decodedFull, 0, 4 * vocab), 1e-5);
        assertTrue(maxDifference(decoded, decodedFull, 4 * vocab, (SEQ - 4) * vocab) > 1e-3);
        assertEquals(0, maxDifference(decoded, withWindow, 0, SEQ * vocab), 1e-4);
    }

    /** Every position's logits through the KV cache, one token at a time. */
    private static float[] decodeAll(DecoderModel model, int[] sequence) {
        int vocab = model.config().vocabSize();
        float[] all = new float[sequence.length * vocab];
        CausalLanguageModel.KvCache cache = model.newKvCache(sequence.length);
        for (int t = 0; t < sequence.length; t++) {
            System.arraycopy(model.decode(cache, new int[] {sequence[t]}), 0, all, t * vocab, vocab);
        }
        return all;
    }

    private static double maxDifference(float[] a, float[] b, int from, int length) {
        double max = 0;
        for (int i = from; i < from + length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }

    /**
     * Gemma 2's caps: at 2 (scores) and 3 (logits) they change the logits and bound them to [−3, 3]; at
     * 10⁶ they sit far above every score and logit and change nothing beyond rounding. (In float32, tanh
     * of a logit far past the cap rounds to ±1, so a capped logit may equal ±3.)
     */
    @Test
    void softCappingChangesTheLogitsOnlyWhereTheyReachTheCap() {
        DecoderConfig capped = TinyModels.GEMMA2;
        DecoderConfig uncapped = capped.withGemma2Attention(capped.queryPreAttnScalar(), 0, 0);
        DecoderConfig farCaps = capped.withGemma2Attention(capped.queryPreAttnScalar(), 1e6, 1e6);
        DecoderConfig attentionCapOnly = capped.withGemma2Attention(capped.queryPreAttnScalar(), 2, 0);
        Map<String, float[]> weights = DecoderModelTest.randomWeights(capped, 2.0, 1);
        int[] sequence = tokens(SEQ, 9);

        float[] withCaps = TinyModels.forwardLogits(adapted(capped, weights), sequence);
        float[] withoutCaps = TinyModels.forwardLogits(adapted(uncapped, weights), sequence);
        float[] withFarCaps = TinyModels.forwardLogits(adapted(farCaps, weights), sequence);
        float[] withAttentionCap = TinyModels.forwardLogits(adapted(attentionCapOnly, weights), sequence);

        double largest = 0;
        for (float logit : withoutCaps) {
            largest = Math.max(largest, Math.abs(logit));
        }
        assertTrue(largest > 3, "uncapped logits reach past the cap: " + largest);
        for (float logit : withCaps) {
            assertTrue(Math.abs(logit) <= 3, "capped logit " + logit);
        }
        assertTrue(maxDifference(withAttentionCap, withoutCaps, 0, withCaps.length) > 1e-2, "the attention cap bites");
        assertEquals(0, maxDifference(withFarCaps, withoutCaps, 0, withCaps.length), 1e-5 * (1 + largest));
    }

    /**
     * Llama 3.2's inverse frequencies (head_dim 64, rope_theta 500000, llama3 factor 32, low 1, high 4,
     * original 8192) as Transformers computes them: pasted from a float32 numpy transcription of
     * {@code _compute_default_rope_parameters} and {@code _compute_llama3_parameters} (arange(0, 64, 2)
     * / 64, base ** that, 1 / it; wavelength 2π/f; where / smooth_factor / is_medium_freq, all float32).
     * Pairs 0–14 keep their frequency, 15–17 are interpolated, 18–31 are divided by 32.
     */
    @Test
    void llama3RopeScalingMatchesTransformersValues() {
        DecoderConfig llama32 = (DecoderConfig) ModelPresets.get("llama-3.2-1b");
        double[] frequencies = llama32.ropeInverseFrequencies();
        Map<Integer, Double> transformers = Map.of(
                0, 1.000000000e+00, 8, 3.760603070e-02, 14, 3.211446106e-03, 15, 1.290548011e-03,
                16, 4.295567051e-04, 17, 9.708286234e-05, 18, 1.946163866e-05, 24, 1.661967644e-06,
                31, 9.418307201e-08);
        transformers.forEach((pair, expected) ->
                assertEquals(expected, frequencies[pair], 2e-6 * expected, "pair " + pair));
        assertEquals(32, frequencies.length);
    }

    /** linear divides every frequency by its factor; dynamic NTK leaves them as they are within max_position_embeddings. */
    @Test
    void linearAndDynamicRopeScalingFollowTransformers() {
        DecoderConfig plain = DecoderConfig.llama(29, 16, 36, 1, 2, 2, 64, 64, 1e-5, 10000, false);
        double[] unscaled = plain.ropeInverseFrequencies();
        double[] linear = plain.withRopeScaling(RopeScaling.linear(4)).ropeInverseFrequencies();
        // numpy float32: 1 / (10000 ** (arange(0, 64, 2) / 64)) / 4 at pairs 0, 8, 16, 31
        double[] transformersLinear = {2.500000000e-01, 2.500000037e-02, 2.499999944e-03, 3.333803761e-05};
        int[] pairs = {0, 8, 16, 31};
        for (int i = 0; i < pairs.length; i++) {
            assertEquals(transformersLinear[i], linear[pairs[i]], 2e-6 * transformersLinear[i]);
        }
        assertArrayEquals(unscaled, plain.withRopeScaling(RopeScaling.dynamic(4)).ropeInverseFrequencies());
        for (DecoderConfig config : TinyModels.DECODER_FAMILIES) {
            assertArrayEquals(DecoderReference.inverseFrequencies(config), config.ropeInverseFrequencies(), 1e-15,
                    TinyModels.name(config));
        }
    }

    static Stream<Arguments> releasedConfigs() {
        return Stream.of(
                Arguments.of(HfConfigs.LLAMA_3_2_1B, "llama-3.2-1b"),
                Arguments.of(HfConfigs.QWEN2_5_0_5B, "qwen2.5-0.5b"),
                Arguments.of(HfConfigs.MISTRAL_7B_V0_3, "mistral-7b-v0.3"),
                Arguments.of(HfConfigs.GEMMA_2_2B, "gemma-2-2b"),
                Arguments.of(HfConfigs.PHI_3_MINI_4K, "phi-3-mini-4k"),
                Arguments.of(HfConfigs.TINYLLAMA, "tinyllama-1.1b"));
    }

    /** The released config.json files read into exactly the presets' configs, and those write back what they read. */
    @ParameterizedTest(name = "{1}")
    @MethodSource("releasedConfigs")
    void releasedConfigsReadAsTheirPresets(String json, String preset) {
        ModelConfig read = ModelConfig.parse(json, preset + "/config.json");

        assertEquals(ModelPresets.get(preset), read);
        assertEquals(read, ModelConfig.parse(read.toJson(), "written"));
    }

    @Test
    void eachFamilyReadsItsOwnKeys() {
        var gemma = (DecoderConfig) ModelConfig.parse(HfConfigs.GEMMA_2B, "gemma-2b");
        assertEquals(Family.GEMMA, gemma.family());
        assertEquals(DecoderConfig.Activation.GELU_TANH, gemma.activation());
        assertEquals(256, gemma.headDim());
        assertTrue(gemma.tieWordEmbeddings(), "Gemma's default ties the head");

        var gemma2 = (DecoderConfig) ModelPresets.get("gemma-2-2b");
        assertEquals(List.of(true, false, true, false), gemma2.slidingLayers().subList(0, 4));
        assertEquals(1 / 16f, gemma2.attentionScale());

        var qwen = (DecoderConfig) ModelConfig.parse(HfConfigs.QWEN2_5_0_5B, "qwen");
        assertEquals(DecoderConfig.AttentionBias.QKV, qwen.attentionBias());
        assertEquals(0, qwen.slidingWindow(), "use_sliding_window false");
        var qwenWindowed = (DecoderConfig) ModelConfig.parse(HfConfigs.QWEN2_5_0_5B
                .replace("\"use_sliding_window\": false", "\"use_sliding_window\": true")
                .replace("\"max_window_layers\": 24", "\"max_window_layers\": 20"), "qwen");
        assertEquals(32768, qwenWindowed.slidingWindow());
        assertEquals(List.of(false, true), List.of(qwenWindowed.slidingLayers().get(19), qwenWindowed.slidingLayers().get(20)));

        var mistralDefault = (DecoderConfig) ModelConfig.parse(HfConfigs.MISTRAL_7B_V0_3
                .replace("\"sliding_window\": null,", ""), "mistral");
        assertEquals(4096, mistralDefault.slidingWindow(), "MistralConfig's default when the key is absent");

        var llamaBias = (DecoderConfig) ModelConfig.parse(HfConfigs.TINYLLAMA
                .replace("\"attention_bias\": false", "\"attention_bias\": true"), "llama");
        assertEquals(DecoderConfig.AttentionBias.QKVO, llamaBias.attentionBias());
        assertTrue(ModelLayout.of(llamaBias).weight("model.layers.0.self_attn.o_proj.bias") != null);
    }

    @Test
    void phi3LongRopeAndUnknownRopeTypesAreRefusedByName() {
        String longrope = HfConfigs.PHI_3_MINI_4K.replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1.0], \"short_factor\": [1.0]}");
        var e = org.junit.jupiter.api.Assertions.assertThrows(ModelConfigException.class,
                () -> ModelConfig.parse(longrope, "phi3/config.json"));
        assertEquals("phi3/config.json: rope_scaling \"longrope\" (Phi-3's 128k long-context RoPE) is not supported;"
                + " the 4k Phi-3 models, with rope_scaling null, are", e.getMessage());
    }

    /** PEFT's default target_modules per model_type, and loraflow's documented choice for phi3. */
    @Test
    void defaultTargetModulesFollowPeftPerModelType() {
        LoraAdapterConfig defaults = LoraAdapterConfig.builder().r(2).loraAlpha(4).build();
        for (DecoderConfig config : TinyModels.DECODER_FAMILIES) {
            List<String> targeted = LoraTargets.select(ModelLayout.of(config), defaults).stream()
                    .map(target -> target.modulePath().substring(target.modulePath().lastIndexOf('.') + 1))
                    .distinct().toList();
            assertEquals(config.family() == Family.PHI3 ? List.of("qkv_proj") : List.of("q_proj", "v_proj"), targeted,
                    TinyModels.name(config));
        }
    }
}
