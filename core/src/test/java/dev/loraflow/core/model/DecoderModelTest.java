package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.peft.LoraAdapterConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class DecoderModelTest {

    private static final int VOCAB = 23;
    private static final int BATCH = 2;
    private static final int SEQ_LEN = 5;
    private static final int CONTEXT = 8;

    /** Grouped-query attention: 4 query heads read 2 kv heads, head_dim 4. */
    static DecoderConfig config(boolean tied) {
        return DecoderConfig.llama(VOCAB, 16, 32, 2, 4, 2, 4, CONTEXT, 1e-5, 10000, tied);
    }

    /** Random weights: linear ones ~ N(0, 1/in), biases ~ N(0, 0.01), norms near 1, embeddings ~ N(0, embeddingStd²). */
    static Map<String, float[]> randomWeights(DecoderConfig config, double embeddingStd, long seed) {
        Random random = new Random(seed);
        Map<String, float[]> weights = new LinkedHashMap<>();
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            float[] value = new float[Math.toIntExact(spec.numel())];
            long[] shape = spec.shape();
            for (int i = 0; i < value.length; i++) {
                double gaussian = random.nextGaussian();
                value[i] = (float) switch (spec.role()) {
                    case NORM_WEIGHT -> 1 + 0.1 * gaussian;
                    case LINEAR_BIAS -> 0.1 * gaussian;
                    case TOKEN_EMBEDDING, OUTPUT_HEAD -> embeddingStd * gaussian;
                    default -> gaussian / Math.sqrt(shape[1]);
                };
            }
            weights.put(spec.name(), value);
        }
        return weights;
    }

    /** Rank 2, alpha 4 on every linear module, the output head included. */
    static List<LoraTarget> everyModule(DecoderConfig config, int rank) {
        ModelLayout layout = ModelLayout.of(config);
        return layout.linearModules().stream()
                .map(module -> new LoraTarget(layout.peftModulePath(module.path()), module.in(), module.out(),
                        module.fanInFanOut(), rank, 4, 4.0 / rank))
                .toList();
    }

    static void randomizeLoraB(DecoderModel model, long seed) {
        Random random = new Random(seed);
        for (Parameter parameter : model.trainableParameters()) {
            if (parameter.name().endsWith("lora_B.weight")) {
                float[] value = parameter.value();
                for (int i = 0; i < value.length; i++) {
                    value[i] = (float) (0.3 * random.nextGaussian());
                }
            }
        }
    }

    static int[] randomTokens(long seed) {
        return new Random(seed).ints(BATCH * SEQ_LEN, 0, VOCAB).toArray();
    }

    /** Next-token targets within each sequence, −100 at each sequence's end and at one position inside. */
    static int[] shiftedTargets(int[] tokens) {
        int[] targets = new int[tokens.length];
        for (int b = 0; b < BATCH; b++) {
            for (int t = 0; t < SEQ_LEN; t++) {
                int row = b * SEQ_LEN + t;
                targets[row] = t == SEQ_LEN - 1 ? Softmax.IGNORE_INDEX : tokens[row + 1];
            }
        }
        targets[1] = Softmax.IGNORE_INDEX;
        return targets;
    }

    /**
     * The whole model's LoRA gradients against central differences of the float loss, h = 1e-2. An
     * entry passes when |num − ana| ≤ 2e-2·max(|num|, |ana|) + 1e-4; every sampled entry (two per tensor)
     * must pass (the brief allows 5 % to fail) and the median relative error must stay below 1e-3
     * (measured about 1.3e-4). With dropout the mask is a function of the key
     * alone, so the loss is still a deterministic function of the parameters.
     */
    @ParameterizedTest(name = "tied={0} dropout={1} adapted={2}")
    @CsvSource({"false, 0, all", "true, 0, all", "false, 0.25, all", "true, 0, q_proj v_proj"})
    void gradientsMatchFiniteDifferences(boolean tied, float dropout, String adapted) {
        DecoderConfig config = config(tied);
        List<LoraTarget> targets = everyModule(config, 2).stream()
                .filter(target -> adapted.equals("all") || List.of(adapted.split(" ")).stream()
                        .anyMatch(name -> target.modulePath().endsWith("." + name)))
                .toList();
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), targets, dropout, 7);
        randomizeLoraB(model, 2);
        int[] tokens = randomTokens(3);
        int[] nextTokens = shiftedTargets(tokens);
        boolean training = dropout > 0;

        int sampled = assertGradientsMatchFiniteDifferences(model, tokens, nextTokens, training, 1e-2f);

        assertEquals(adapted.equals("all") ? 30 : 8, sampled);
    }

    /**
     * Runs a forward and backward on BATCH × SEQ_LEN tokens, then checks the LoRA gradients of the first
     * two blocks and the output head, two random entries a tensor, against central differences of the
     * float loss with step h (see {@link #gradientsMatchFiniteDifferences}). Returns how many tensors it sampled.
     */
    static int assertGradientsMatchFiniteDifferences(DecoderModel model, int[] tokens, int[] nextTokens,
                                                     boolean training, float h) {
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ_LEN);
        long key = 11;

        model.forwardWithTargets(tokens, nextTokens, ws, training, key);
        model.backward(ws, 1f);

        List<Parameter> sampled = new ArrayList<>();
        for (Parameter parameter : model.trainableParameters()) {
            // The first and last blocks and the output head; the mean over every module of a block.
            if (parameter.name().contains("layers.0.") || parameter.name().contains("layers.1.")
                    || parameter.name().startsWith("lm_head")) {
                sampled.add(parameter);
            }
        }
        Random random = new Random(5);
        List<Double> relativeErrors = new ArrayList<>();
        int passed = 0;
        List<String> failures = new ArrayList<>();
        for (Parameter parameter : sampled) {
            for (int sample = 0; sample < 2; sample++) {
                int index = random.nextInt(parameter.size());
                float original = parameter.value()[index];
                parameter.value()[index] = original + h;
                double plus = model.forwardWithTargets(tokens, nextTokens, ws, training, key);
                parameter.value()[index] = original - h;
                double minus = model.forwardWithTargets(tokens, nextTokens, ws, training, key);
                parameter.value()[index] = original;
                double numeric = (plus - minus) / (2 * h);
                double analytic = parameter.grad()[index];
                double difference = Math.abs(numeric - analytic);
                double magnitude = Math.max(Math.abs(numeric), Math.abs(analytic));
                relativeErrors.add(difference / Math.max(magnitude, 1e-6));
                if (difference <= 2e-2 * magnitude + 1e-4) {
                    passed++;
                } else {
                    failures.add(parameter.name() + "[" + index + "] numeric " + numeric + " analytic " + analytic);
                }
            }
        }
        int total = relativeErrors.size();
        double median = relativeErrors.stream().sorted().toList().get(total / 2);
        assertEquals(total, passed, passed + "/" + total + " passed: " + failures);
        assertTrue(median < 1e-3, "median relative error " + median);
        assertTrue(sampled.stream().anyMatch(p -> p.name().contains("lora_A") && nonZero(p.grad())),
                "A's gradients are non-trivial");
        return sampled.size();
    }

    private static boolean nonZero(float[] values) {
        for (float value : values) {
            if (value != 0f) {
                return true;
            }
        }
        return false;
    }

    /**
     * The logits against {@link DecoderReference}, a direct double-precision transcription of Hugging Face's
     * LlamaForCausalLM (RMSNorm, rotate_half RoPE, repeat_kv, SiLU-gated MLP) with every adapter merged as W0 + s·B·A.
     */
    @ParameterizedTest(name = "tied={0}")
    @ValueSource(booleans = {false, true})
    void logitsMatchAPlainTranscriptionOfTheHuggingFaceModel(boolean tied) {
        DecoderConfig config = config(tied);
        Map<String, float[]> weights = randomWeights(config, 0.5, 1);
        DecoderModel model = new DecoderModel(config, weights, everyModule(config, 2), 0f, 7);
        randomizeLoraB(model, 2);
        int[] tokens = randomTokens(3);
        int[] targets = shiftedTargets(tokens);
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ_LEN);
        double loss = model.forwardWithTargets(tokens, targets, ws, false, 0);

        DecoderReference reference = new DecoderReference(model, weights);
        double[][] expected = new double[BATCH * SEQ_LEN][];
        for (int b = 0; b < BATCH; b++) {
            double[][] sequence = reference.logits(Arrays.copyOfRange(tokens, b * SEQ_LEN, (b + 1) * SEQ_LEN));
            System.arraycopy(sequence, 0, expected, b * SEQ_LEN, SEQ_LEN);
        }
        float[] logits = ws.logits();
        double expectedLoss = 0;
        int counted = 0;
        for (int row = 0; row < expected.length; row++) {
            for (int v = 0; v < VOCAB; v++) {
                assertEquals(expected[row][v], logits[row * VOCAB + v], 1e-4 * (1 + Math.abs(expected[row][v])),
                        "logit [" + row + ", " + v + "]");
            }
            if (targets[row] != Softmax.IGNORE_INDEX) {
                double max = Arrays.stream(expected[row]).max().orElseThrow();
                double sum = Arrays.stream(expected[row]).map(z -> Math.exp(z - max)).sum();
                expectedLoss += max + Math.log(sum) - expected[row][targets[row]];
                counted++;
            }
        }
        assertEquals(expectedLoss / counted, loss, 1e-5);
    }

    /** The backward stops below the lowest adapted block; the adapted modules' gradients are unchanged by it. */
    @Test
    void adaptersInTheLastBlockOnlyGetTheSameGradients() {
        DecoderConfig config = config(false);
        Map<String, float[]> weights = randomWeights(config, 0.5, 1);
        ModelLayout layout = ModelLayout.of(config);
        List<LoraTarget> lastBlock = List.of(target(layout, "model.layers.1.self_attn.q_proj"),
                target(layout, "model.layers.1.mlp.down_proj"));
        DecoderModel partial = new DecoderModel(config, weights, lastBlock, 0f, 7);
        randomizeLoraB(partial, 2);
        // Every module adapted, but with B = 0 except where it mirrors the partial model.
        DecoderModel full = new DecoderModel(config, weights, everyModule(config, 2), 0f, 7);
        Map<String, Parameter> fullByName = new HashMap<>();
        full.trainableParameters().forEach(parameter -> fullByName.put(parameter.name(), parameter));
        for (Parameter parameter : partial.trainableParameters()) {
            float[] value = fullByName.get(parameter.name()).value();
            System.arraycopy(parameter.value(), 0, value, 0, value.length);
        }
        int[] tokens = randomTokens(3);
        int[] targets = shiftedTargets(tokens);
        CausalLanguageModel.Workspace partialWs = partial.newWorkspace(BATCH, SEQ_LEN);
        CausalLanguageModel.Workspace fullWs = full.newWorkspace(BATCH, SEQ_LEN);
        assertEquals(full.forwardWithTargets(tokens, targets, fullWs, false, 0), partial.forwardWithTargets(tokens, targets, partialWs, false, 0));
        partial.backward(partialWs, 1f);
        full.backward(fullWs, 1f);
        assertEquals(4, partial.trainableParameters().size());
        for (Parameter parameter : partial.trainableParameters()) {
            assertTrue(nonZero(parameter.grad()), parameter.name());
            assertArrayEquals(fullByName.get(parameter.name()).grad(), parameter.grad(), parameter.name());
        }
    }

    @ParameterizedTest(name = "tied={0}")
    @ValueSource(booleans = {false, true})
    void freshAdaptersLeaveTheBaseModelExactly(boolean tied) {
        DecoderConfig config = config(tied);
        Map<String, float[]> weights = randomWeights(config, 0.5, 1);
        DecoderModel base = new DecoderModel(config, weights, List.of(), 0f, 7);
        DecoderModel adapted = new DecoderModel(config, weights, everyModule(config, 2), 0f, 7);
        assertTrue(base.trainableParameters().isEmpty());
        assertEquals(2 * 15, adapted.trainableParameters().size());
        int[] tokens = randomTokens(3);
        int[] targets = shiftedTargets(tokens);
        CausalLanguageModel.Workspace baseWs = base.newWorkspace(BATCH, SEQ_LEN);
        CausalLanguageModel.Workspace adaptedWs = adapted.newWorkspace(BATCH, SEQ_LEN);

        double baseLoss = base.forwardWithTargets(tokens, targets, baseWs, false, 0);
        double adaptedLoss = adapted.forwardWithTargets(tokens, targets, adaptedWs, false, 0);

        // B = 0, so the low-rank terms add exact zeros
        assertEquals(baseLoss, adaptedLoss);
        assertArrayEquals(baseWs.logits(), adaptedWs.logits());
    }

    @Test
    void trainableParametersFollowModuleOrderAThenB() {
        DecoderConfig config = config(false);
        ModelLayout layout = ModelLayout.of(config);
        List<LoraTarget> targets = List.of(
                target(layout, "model.layers.1.mlp.down_proj"),
                target(layout, "model.layers.0.self_attn.v_proj"),
                target(layout, "model.layers.0.self_attn.q_proj"));
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), targets, 0f, 7);
        assertEquals(List.of(
                        "model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_B.weight",
                        "model.layers.0.self_attn.v_proj.lora_A.weight", "model.layers.0.self_attn.v_proj.lora_B.weight",
                        "model.layers.1.mlp.down_proj.lora_A.weight", "model.layers.1.mlp.down_proj.lora_B.weight"),
                model.trainableParameters().stream().map(Parameter::name).toList());
        // Distinct seeds per module: no two A matrices of equal shape start alike.
        LoRALinear q = model.linearModules().get(0);
        DecoderModel reseeded = new DecoderModel(config, randomWeights(config, 0.5, 1), targets, 0f, 8);
        assertFalse(Arrays.equals(q.loraA().value(), reseeded.linearModules().get(0).loraA().value()));
    }

    private static LoraTarget target(ModelLayout layout, String path) {
        LinearModule module = layout.linearModules().stream().filter(m -> m.path().equals(path)).findFirst().orElseThrow();
        return new LoraTarget(path, module.in(), module.out(), false, 2, 4, 2);
    }

    @ParameterizedTest(name = "tied={0}")
    @ValueSource(booleans = {false, true})
    void smallLogitsGiveLossNearLnVocab(boolean tied) {
        DecoderConfig config = config(tied);
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.01, 4), everyModule(config, 2), 0f, 7);
        int[] tokens = randomTokens(3);
        double loss = model.forwardWithTargets(tokens, shiftedTargets(tokens), model.newWorkspace(BATCH, SEQ_LEN), false, 0);
        assertEquals(Math.log(VOCAB), loss, 0.05);
    }

    @Test
    void allTargetsIgnoredGiveZeroLossAndGradient() {
        DecoderConfig config = config(false);
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), everyModule(config, 2), 0f, 7);
        randomizeLoraB(model, 2);
        int[] ignored = new int[BATCH * SEQ_LEN];
        Arrays.fill(ignored, Softmax.IGNORE_INDEX);
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ_LEN);
        assertEquals(0.0, model.forwardWithTargets(randomTokens(3), ignored, ws, true, 0));
        model.backward(ws, 1f);
        model.trainableParameters().forEach(parameter -> assertFalse(nonZero(parameter.grad()), parameter.name()));
    }

    @ParameterizedTest(name = "tied={0}")
    @ValueSource(booleans = {false, true})
    void logitsAreCausal(boolean tied) {
        DecoderConfig config = config(tied);
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), everyModule(config, 2), 0f, 7);
        randomizeLoraB(model, 2);
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ_LEN);
        int[] tokens = randomTokens(3);
        int[] targets = shiftedTargets(tokens);
        model.forwardWithTargets(tokens, targets, ws, false, 0);
        float[] before = ws.logits().clone();

        int changed = 3;
        int[] altered = tokens.clone();
        altered[changed] = (tokens[changed] + 1) % VOCAB;
        model.forwardWithTargets(altered, targets, ws, false, 0);
        float[] after = ws.logits();

        for (int row = 0; row < BATCH * SEQ_LEN; row++) {
            float[] rowBefore = Arrays.copyOfRange(before, row * VOCAB, (row + 1) * VOCAB);
            float[] rowAfter = Arrays.copyOfRange(after, row * VOCAB, (row + 1) * VOCAB);
            boolean sees = row >= changed && row < SEQ_LEN;
            if (sees) {
                assertFalse(Arrays.equals(rowBefore, rowAfter), "row " + row + " sees the changed token");
            } else {
                assertArrayEquals(rowBefore, rowAfter, "row " + row + " must not see token " + changed);
            }
        }
    }

    @Test
    void badTokensTargetsAndLengthsAreRejected() {
        DecoderConfig config = config(false);
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), everyModule(config, 2), 0f, 7);
        CausalLanguageModel.Workspace ws = model.newWorkspace(BATCH, SEQ_LEN);
        int[] tokens = randomTokens(3);
        int[] targets = shiftedTargets(tokens);

        int[] tooLarge = tokens.clone();
        tooLarge[4] = VOCAB;
        assertMessage("token id 23 at index 4", () -> model.forwardWithTargets(tooLarge, targets, ws, false, 0));
        int[] negative = tokens.clone();
        negative[0] = -1;
        assertMessage("token id -1 at index 0", () -> model.forwardWithTargets(negative, targets, ws, false, 0));
        int[] ignoredToken = tokens.clone();
        ignoredToken[0] = Softmax.IGNORE_INDEX;
        assertMessage("token id -100", () -> model.forwardWithTargets(ignoredToken, targets, ws, false, 0));
        int[] badTarget = targets.clone();
        badTarget[2] = VOCAB + 5;
        assertMessage("target id 28 at index 2", () -> model.forwardWithTargets(tokens, badTarget, ws, false, 0));
        assertMessage("9 tokens", () -> model.forwardWithTargets(Arrays.copyOf(tokens, 9), targets, ws, false, 0));
        assertMessage("seqLen 9 exceeds", () -> model.newWorkspace(1, CONTEXT + 1));
        model.newWorkspace(1, CONTEXT);
        assertThrows(IllegalStateException.class, () -> model.backward(ws, 1f));
        DecoderModel other = new DecoderModel(config, randomWeights(config, 0.5, 1), List.of(), 0f, 7);
        assertMessage("another model", () -> other.forwardWithTargets(tokens, targets, ws, false, 0));
    }

    @Test
    void badWeightsAreRejectedByName() {
        DecoderConfig config = config(false);
        Function<Map<String, float[]>, DecoderModel> build = weights -> new DecoderModel(config, weights, List.of(), 0f, 7);

        Map<String, float[]> missing = new HashMap<>(randomWeights(config, 0.5, 1));
        missing.remove("model.layers.1.mlp.up_proj.weight");
        assertMessage("missing weight model.layers.1.mlp.up_proj.weight [32, 16]", () -> build.apply(missing));

        Map<String, float[]> missingHead = new HashMap<>(randomWeights(config, 0.5, 1));
        missingHead.remove("lm_head.weight");
        assertMessage("missing weight lm_head.weight", () -> build.apply(missingHead));

        Map<String, float[]> wrongSize = new HashMap<>(randomWeights(config, 0.5, 1));
        wrongSize.put("model.layers.0.self_attn.k_proj.weight", new float[16 * 16]);
        assertMessage("weight model.layers.0.self_attn.k_proj.weight has 256 elements, expected [8, 16]",
                () -> build.apply(wrongSize));

        Map<String, float[]> extra = new HashMap<>(randomWeights(config, 0.5, 1));
        extra.put("model.layers.2.mlp.up_proj.weight", new float[32 * 16]);
        assertMessage("unexpected weight model.layers.2.mlp.up_proj.weight", () -> build.apply(extra));

        DecoderConfig tiedConfig = config(true);
        Map<String, float[]> tiedWithHead = new HashMap<>(randomWeights(tiedConfig, 0.5, 1));
        tiedWithHead.put("lm_head.weight", new float[VOCAB * 16]);
        new DecoderModel(tiedConfig, tiedWithHead, List.of(), 0f, 7);

        Map<String, float[]> weights = randomWeights(config, 0.5, 1);
        LoraTarget misshapen = new LoraTarget("model.layers.0.self_attn.k_proj", 16, 16, false, 2, 4, 2);
        assertMessage("LoRA target model.layers.0.self_attn.k_proj is 16 → 16",
                () -> new DecoderModel(config, weights, List.of(misshapen), 0f, 7));
        LoraTarget unknown = new LoraTarget("model.layers.0.self_attn.x_proj", 16, 16, false, 2, 4, 2);
        assertMessage("model.layers.0.self_attn.x_proj is not a linear module",
                () -> new DecoderModel(config, weights, List.of(unknown), 0f, 7));
    }

    @Test
    void targetsSelectedFromAPeftConfigAdaptThoseModules() {
        DecoderConfig config = config(true);
        var adapterConfig = LoraAdapterConfig.builder().r(4).loraAlpha(8).useRslora(true)
                .targetModules(new LoraAdapterConfig.TargetModules.AllLinear()).build();
        List<LoraTarget> targets = LoraTargets.select(ModelLayout.of(config), adapterConfig);
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), targets, 0.1f, 7);
        assertEquals(2 * 7 * config.numLayers(), model.trainableParameters().size());
        for (LoRALinear linear : model.linearModules()) {
            boolean head = linear.name().equals(ModelLayout.OUTPUT_HEAD);
            assertEquals(head ? 0 : 4, linear.spec().rank(), linear.name());
            assertEquals(head ? 0f : 4f, linear.scaling(), linear.name());
        }
    }

    @Test
    void rsLoraScalingIsKept() {
        DecoderConfig config = config(false);
        LinearModule module = ModelLayout.of(config).linearModules().getFirst();
        LoraTarget rsLora = new LoraTarget(module.path(), module.in(), module.out(), false, 4, 8, 8 / Math.sqrt(4));
        DecoderModel model = new DecoderModel(config, randomWeights(config, 0.5, 1), List.of(rsLora), 0f, 7);
        assertEquals(4f, model.linearModules().getFirst().scaling());
        LoraTarget inconsistent = new LoraTarget(module.path(), module.in(), module.out(), false, 4, 8, 3);
        assertMessage("scaling 3.0", () -> new DecoderModel(config, randomWeights(config, 0.5, 1), List.of(inconsistent), 0f, 7));
    }

    private static void assertMessage(String expected, Executable executable) {
        IllegalArgumentException thrown = assertThrows(IllegalArgumentException.class, executable);
        assertTrue(thrown.getMessage().contains(expected), "message '" + thrown.getMessage() + "' lacks '" + expected + "'");
    }
}
