package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraAdapterConfig.TargetModules;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class Gpt2ModelTest {

    /** Tiny but with every dimension distinct: V 37, P 16, E 16, 2 layers, 4 heads of 4, inner 24. */
    static final Gpt2Config TINY = new Gpt2Config(37, 16, 16, 2, 4, 24, 1e-5);
    static final int BATCH = 2;
    static final int SEQ = 7;

    /** All linear modules, with a per-module rank and alpha. */
    static final LoraAdapterConfig ALL_LINEAR = LoraAdapterConfig.builder()
            .r(4).loraAlpha(8).targetModules(new TargetModules.AllLinear())
            .rankPattern(Map.of("c_fc", 2)).alphaPattern(Map.of("mlp.c_proj", 3.0)).build();

    /** Two kinds of module in the first block only, rsLoRA: the second block has no adapter at all. */
    static final LoraAdapterConfig FIRST_BLOCK = LoraAdapterConfig.builder()
            .r(3).loraAlpha(6).targetModules("c_attn", "mlp.c_proj").layersToTransform(List.of(0)).useRslora(true).build();

    static Stream<Arguments> adapterConfigs() {
        return Stream.of(Arguments.of("all-linear", ALL_LINEAR), Arguments.of("first block", FIRST_BLOCK));
    }

    // ---------------------------------------------------------------- helpers

    static Map<String, float[]> randomWeights(Gpt2Config config, long seed) {
        return TinyModels.spreadWeights(config, seed);
    }

    /** Gives every B random values, so that the adapters change the output and A gets gradients. */
    static void randomizeB(Gpt2Model model, long seed) {
        Rng rng = new Rng(seed);
        for (LoRALinear module : model.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.3f);
            }
        }
    }

    static int[] randomIds(int count, int vocab, long seed) {
        Rng rng = new Rng(seed);
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = (int) Long.remainderUnsigned(rng.nextLong(), vocab);
        }
        return ids;
    }

    /** The inputs as labels, with a few ignored, the first position of the second sequence among them. */
    static int[] labelsOf(int[] ids) {
        int[] labels = ids.clone();
        labels[3] = -100;
        labels[SEQ + 1] = -100;
        labels[SEQ + 5] = -100;
        return labels;
    }

    static double[] toDouble(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }

    static Gpt2Reference reference(Gpt2Model model, Map<String, float[]> weights) {
        Map<String, double[]> doubles = new HashMap<>();
        weights.forEach((name, values) -> doubles.put(name, toDouble(values)));
        Map<String, Gpt2Reference.Adapter> adapters = new HashMap<>();
        model.adaptedModules().forEach((path, module) -> adapters.put(model.layout().canonicalModulePath(path),
                new Gpt2Reference.Adapter(module.spec().rank(), toDouble(module.loraA().value()),
                        toDouble(module.loraB().value()), module.scaling())));
        return new Gpt2Reference(model.config(), doubles, adapters);
    }

    static Map<String, float[]> snapshot(Map<String, float[]> weights) {
        Map<String, float[]> copy = new HashMap<>();
        weights.forEach((name, values) -> copy.put(name, values.clone()));
        return copy;
    }

    static double maxAbs(double[] values) {
        double max = 0;
        for (double v : values) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }

    // ---------------------------------------------------------------- forward

    @ParameterizedTest(name = "{0}")
    @MethodSource("adapterConfigs")
    void logitsAndLossMatchTheDoublePrecisionReference(String label, LoraAdapterConfig lora) {
        Map<String, float[]> weights = randomWeights(TINY, 1);
        Gpt2Model model = new Gpt2Model(TINY, weights, lora, 2);
        randomizeB(model, 3);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 4);
        int[] labels = labelsOf(ids);
        Gpt2Reference reference = reference(model, weights);

        var ws = model.newWorkspace(BATCH, SEQ);
        double loss = model.forward(ws, ids, labels, false, 0);
        double[] expected = reference.logits(ids, BATCH, SEQ);
        float[] actual = ws.logits();
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 2e-5 * (1 + Math.abs(expected[i])), "logit " + i);
        }
        assertEquals(reference.loss(ids, labels, BATCH, SEQ), loss, 1e-5);
        assertEquals(BATCH * (SEQ - 1) - 3, ws.countedTokens());
    }

    @Test
    void aFreshAdapterLeavesTheBaseModelsLogitsUnchanged() {
        Map<String, float[]> weights = randomWeights(TINY, 5);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 6);
        float[] base = new Gpt2Model(TINY, weights, null, 0).logits(ids, BATCH, SEQ);
        float[] adapted = new Gpt2Model(TINY, weights, ALL_LINEAR, 7).logits(ids, BATCH, SEQ);
        // B = 0, so the low-rank term adds exact zeros
        assertArrayEquals(base, adapted);
    }

    @Test
    void aWorkspaceReusedForAnotherBatchKeepsNothingOfThePreviousOne() {
        Map<String, float[]> weights = randomWeights(TINY, 8);
        Gpt2Model model = new Gpt2Model(TINY, weights, ALL_LINEAR, 9);
        randomizeB(model, 10);
        int[] first = randomIds(BATCH * SEQ, TINY.vocabSize(), 11);
        int[] second = randomIds(BATCH * SEQ, TINY.vocabSize(), 12);
        var ws = model.newWorkspace(BATCH, SEQ);
        double firstLoss = model.forward(ws, first, labelsOf(first), false, 0);
        float[] firstLogits = ws.logits().clone();
        model.backward(ws, 1f);
        model.forward(ws, second, labelsOf(second), true, 99);
        model.backward(ws, 1f);
        // bit for bit: no kernel depends on whether C2 has compiled it yet
        assertEquals(firstLoss, model.forward(ws, first, labelsOf(first), false, 0));
        assertArrayEquals(firstLogits, ws.logits());
    }

    // ---------------------------------------------------------------- backward

    @ParameterizedTest(name = "{0}")
    @MethodSource("adapterConfigs")
    void adapterGradientsMatchFiniteDifferencesOfTheReference(String label, LoraAdapterConfig lora) {
        Map<String, float[]> weights = randomWeights(TINY, 13);
        Gpt2Model model = new Gpt2Model(TINY, weights, lora, 14);
        randomizeB(model, 15);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 16);
        int[] labels = labelsOf(ids);
        var ws = model.newWorkspace(BATCH, SEQ);
        model.forward(ws, ids, labels, true, 17);
        model.backward(ws, 1f);

        Gpt2Reference reference = reference(model, weights);
        double h = 1e-4;
        int checked = 0;
        for (var entry : model.adaptedModules().entrySet()) {
            Gpt2Reference.Adapter adapter = reference.adapters().get(model.layout().canonicalModulePath(entry.getKey()));
            LoRALinear module = entry.getValue();
            for (boolean isA : new boolean[] {true, false}) {
                double[] values = isA ? adapter.a() : adapter.b();
                float[] grad = isA ? module.loraA().grad() : module.loraB().grad();
                double[] numeric = new double[values.length];
                for (int i = 0; i < values.length; i++) {
                    double saved = values[i];
                    values[i] = saved + h;
                    double plus = reference.loss(ids, labels, BATCH, SEQ);
                    values[i] = saved - h;
                    double minus = reference.loss(ids, labels, BATCH, SEQ);
                    values[i] = saved;
                    numeric[i] = (plus - minus) / (2 * h);
                }
                double scale = maxAbs(numeric);
                assertTrue(scale > 1e-4, entry.getKey() + (isA ? " A" : " B") + ": gradient vanishes, the check is void");
                for (int i = 0; i < values.length; i++) {
                    assertEquals(numeric[i], grad[i], 1e-4 * scale + 1e-7,
                            entry.getKey() + (isA ? ".lora_A" : ".lora_B") + "[" + i + "]");
                    checked++;
                }
            }
        }
        assertEquals(model.trainableParameters().stream().mapToInt(Parameter::size).sum(), checked);
    }

    @Test
    void withDropoutTheGradientIsTheDerivativeOfTheLossUnderTheSameMasks() {
        LoraAdapterConfig lora = ALL_LINEAR.toBuilder().loraDropout(0.25).build();
        Gpt2Model model = new Gpt2Model(TINY, randomWeights(TINY, 18), lora, 19);
        randomizeB(model, 20);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 21);
        int[] labels = labelsOf(ids);
        long key = 22;
        var ws = model.newWorkspace(BATCH, SEQ);
        double loss = model.forward(ws, ids, labels, true, key);
        double withoutDropout = model.forward(model.newWorkspace(BATCH, SEQ), ids, labels, false, key);
        assertTrue(Math.abs(loss - withoutDropout) > 1e-4, "dropout changed nothing");
        model.forward(ws, ids, labels, true, key);
        model.backward(ws, 1f);

        // Along the gradient g, (L(θ + h·ĝ) − L(θ − h·ĝ)) / 2h ≈ |g|.
        List<Parameter> parameters = model.trainableParameters();
        double norm = 0;
        for (Parameter p : parameters) {
            for (float g : p.grad()) {
                norm += (double) g * g;
            }
        }
        norm = Math.sqrt(norm);
        double h = 1e-2;
        double[] sides = new double[2];
        for (int side = 0; side < 2; side++) {
            double step = (side == 0 ? h : -h) / norm;
            List<float[]> saved = new ArrayList<>();
            for (Parameter p : parameters) {
                saved.add(p.value().clone());
                for (int i = 0; i < p.size(); i++) {
                    p.value()[i] += (float) (step * p.grad()[i]);
                }
            }
            sides[side] = model.forward(model.newWorkspace(BATCH, SEQ), ids, labels, true, key);
            for (int j = 0; j < parameters.size(); j++) {
                System.arraycopy(saved.get(j), 0, parameters.get(j).value(), 0, parameters.get(j).size());
            }
        }
        assertEquals(norm, (sides[0] - sides[1]) / (2 * h), 0.01 * norm);
    }

    @Test
    void gradientsAccumulateOverBackwardCallsScaledByDLoss() {
        Gpt2Model model = new Gpt2Model(TINY, randomWeights(TINY, 23), ALL_LINEAR, 24);
        randomizeB(model, 25);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 26);
        var ws = model.newWorkspace(BATCH, SEQ);
        model.forward(ws, ids, labelsOf(ids), false, 0);
        model.backward(ws, 1f);
        List<float[]> once = model.trainableParameters().stream().map(p -> p.grad().clone()).toList();
        model.trainableParameters().forEach(Parameter::zeroGrad);
        for (int k = 0; k < 2; k++) {
            model.forward(ws, ids, labelsOf(ids), false, 0);
            model.backward(ws, 0.5f);
        }
        for (int j = 0; j < once.size(); j++) {
            // dLoss = 0.5 halves every term exactly, and two halves add up to the whole
            assertArrayEquals(once.get(j), model.trainableParameters().get(j).grad());
        }
    }

    @Test
    void trainingTheAdapterLowersTheLossAndNeverTouchesTheBaseWeights() {
        Map<String, float[]> weights = randomWeights(TINY, 27);
        Map<String, float[]> before = snapshot(weights);
        LoraAdapterConfig lora = ALL_LINEAR.toBuilder().loraDropout(0.05).build();
        Gpt2Model model = new Gpt2Model(TINY, weights, lora, 28);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 29);
        int[] labels = labelsOf(ids);
        var ws = model.newWorkspace(BATCH, SEQ);
        AdamW optimizer = new AdamW(model.trainableParameters(), AdamW.Settings.defaults());
        double initial = model.forward(ws, ids, labels, false, 0);
        for (int step = 0; step < 60; step++) {
            optimizer.zeroGrad();
            model.forward(ws, ids, labels, true, step);
            model.backward(ws, 1f);
            optimizer.step(2e-2f);
        }
        double trained = model.forward(ws, ids, labels, false, 0);
        assertTrue(trained < 0.1 * initial, "loss " + initial + " → " + trained);
        float[] unmerged = ws.logits().clone();

        model.merge();
        assertArrayEquals(unmerged, model.logits(ids, BATCH, SEQ), 1e-4f);
        assertThrows(IllegalStateException.class, () -> {
            model.forward(ws, ids, labels, true, 0);
            model.backward(ws, 1f);
        });
        model.unmerge();
        assertEquals(trained, model.forward(ws, ids, labels, false, 0));
        before.forEach((name, values) -> assertArrayEquals(values, weights.get(name), name));
    }

    // ---------------------------------------------------------------- adapters and targets

    @Test
    void theDefaultTargetsAreTheAttentionInputProjectionsUnderPeftNames() {
        Gpt2Model model = new Gpt2Model(TINY, randomWeights(TINY, 30), LoraAdapterConfig.builder().build(), 31);
        assertEquals(List.of("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"),
                List.copyOf(model.adaptedModules().keySet()));
        assertEquals(List.of("transformer.h.0.attn.c_attn.lora_A.weight", "transformer.h.0.attn.c_attn.lora_B.weight",
                        "transformer.h.1.attn.c_attn.lora_A.weight", "transformer.h.1.attn.c_attn.lora_B.weight"),
                model.trainableParameters().stream().map(Parameter::name).toList());
        LoRALinear cAttn = model.adaptedModules().get("transformer.h.0.attn.c_attn");
        assertTrue(cAttn.fanInFanOut());
        assertEquals(16, cAttn.inFeatures());
        assertEquals(48, cAttn.outFeatures());
        assertEquals(new Gpt2Model(TINY, randomWeights(TINY, 30), null, 0).trainableParameters(), List.of());
    }

    @Test
    void aPeftAdapterWrittenAndReadBackGivesTheSameModel(@TempDir Path dir) throws IOException {
        Map<String, float[]> weights = randomWeights(TINY, 32);
        Gpt2Model trained = new Gpt2Model(TINY, weights, ALL_LINEAR, 33);
        randomizeB(trained, 34);
        trained.toPeftAdapter().write(dir, DType.F32);

        PeftAdapter read = PeftAdapter.read(dir);
        Gpt2Model loaded = new Gpt2Model(TINY, weights, read.config(), 35);
        loaded.loadAdapter(read);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 36);
        assertArrayEquals(trained.logits(ids, BATCH, SEQ), loaded.logits(ids, BATCH, SEQ));

        Gpt2Model other = new Gpt2Model(TINY, weights, FIRST_BLOCK, 37);
        var e = assertThrows(IllegalArgumentException.class, () -> other.loadAdapter(read));
        assertTrue(e.getMessage().contains("transformer.h.1.mlp.c_fc"), e.getMessage());
    }

    @Test
    void unsupportedAdapterConfigsAreRefused() {
        Map<String, float[]> weights = randomWeights(TINY, 38);
        var head = assertThrows(IllegalArgumentException.class, () -> new Gpt2Model(TINY, weights,
                LoraAdapterConfig.builder().targetModules("c_attn", "lm_head").build(), 0));
        assertTrue(head.getMessage().contains("lm_head"), head.getMessage());
        var bias = assertThrows(IllegalArgumentException.class, () -> new Gpt2Model(TINY, weights,
                LoraAdapterConfig.builder().bias(LoraAdapterConfig.Bias.ALL).build(), 0));
        assertTrue(bias.getMessage().contains("\"all\""), bias.getMessage());
        var none = assertThrows(IllegalArgumentException.class, () -> new Gpt2Model(TINY, weights,
                LoraAdapterConfig.builder().targetModules("q_proj").build(), 0));
        assertTrue(none.getMessage().contains("not found"), none.getMessage());
    }

    // ---------------------------------------------------------------- bad input

    @Test
    void badBatchesAreClearErrors() {
        Gpt2Model model = new Gpt2Model(TINY, randomWeights(TINY, 39), ALL_LINEAR, 40);
        var ws = model.newWorkspace(BATCH, SEQ);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 41);

        int[] badId = ids.clone();
        badId[5] = TINY.vocabSize();
        var id = assertThrows(IllegalArgumentException.class, () -> model.forward(ws, badId, null, false, 0));
        assertTrue(id.getMessage().contains("input id 37 at position 5"), id.getMessage());
        int[] badLabel = ids.clone();
        badLabel[4] = -1;
        var label = assertThrows(IllegalArgumentException.class, () -> model.forward(ws, ids, badLabel, false, 0));
        assertTrue(label.getMessage().contains("label -1 at position 4"), label.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.forward(ws, new int[SEQ], null, false, 0));
        assertThrows(IllegalArgumentException.class, () -> model.forward(ws, ids, new int[SEQ], false, 0));
        var length = assertThrows(IllegalArgumentException.class, () -> model.newWorkspace(1, TINY.maxPositions() + 1));
        assertTrue(length.getMessage().contains("n_positions 16"), length.getMessage());

        model.forward(ws, ids, null, false, 0);
        assertThrows(IllegalStateException.class, () -> model.backward(ws, 1f));
        var foreign = new Gpt2Model(TINY, randomWeights(TINY, 39), ALL_LINEAR, 40).newWorkspace(BATCH, SEQ);
        assertThrows(IllegalArgumentException.class, () -> model.forward(foreign, ids, null, false, 0));
    }

    @Test
    void inMemoryWeightsMustMatchTheLayout() {
        Map<String, float[]> weights = randomWeights(TINY, 42);
        weights.remove("h.1.ln_2.bias");
        weights.put("h.0.attn.c_proj.weight", new float[3]);
        weights.put("h.0.attn.bias", new float[1]);
        var e = assertThrows(CheckpointLayoutException.class, () -> new Gpt2Model(TINY, weights, null, 0));
        assertTrue(e.getMessage().contains("missing tensor h.1.ln_2.bias"), e.getMessage());
        assertTrue(e.getMessage().contains("h.0.attn.c_proj.weight [16, 16] LINEAR_WEIGHT has 3 values"), e.getMessage());
        assertTrue(e.getMessage().contains("unexpected tensor h.0.attn.bias"), e.getMessage());
    }

    // ---------------------------------------------------------------- Hugging Face checkpoints

    /** Writes a model directory as Transformers' GPT-2 checkpoints look: prefixed names, mask buffers, a tied lm_head. */
    static void writeHfCheckpoint(Path dir, Gpt2Config config, Map<String, float[]> weights, DType dtype, boolean prefixed)
            throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), config.toJson(), StandardCharsets.UTF_8);
        ModelLayout layout = ModelLayout.of(config);
        var writer = new SafetensorsWriter().putMetadata("format", "pt");
        String prefix = prefixed ? "transformer." : "";
        for (WeightSpec spec : layout.weights()) {
            writer.add(prefix + spec.name(), weights.get(spec.name()), dtype, spec.shape());
        }
        int p = config.maxPositions();
        for (int layer = 0; layer < config.numLayers(); layer++) {
            writer.add(prefix + "h." + layer + ".attn.bias", new float[p * p], dtype, 1, 1, p, p);
        }
        writer.add("lm_head.weight", weights.get("wte.weight"), dtype, config.vocabSize(), config.hiddenSize());
        writer.write(dir.resolve(SafetensorsWriter.SINGLE_FILE));
    }

    @Test
    void loadsHuggingFaceCheckpointsWithOrWithoutThePrefixAndInBf16(@TempDir Path tmp) throws IOException {
        Map<String, float[]> weights = randomWeights(TINY, 43);
        int[] ids = randomIds(BATCH * SEQ, TINY.vocabSize(), 44);
        int[] labels = labelsOf(ids);
        Gpt2Model inMemory = new Gpt2Model(TINY, weights, null, 0);
        double f32Loss = inMemory.forward(inMemory.newWorkspace(BATCH, SEQ), ids, labels, false, 0);

        writeHfCheckpoint(tmp.resolve("prefixed"), TINY, weights, DType.F32, true);
        writeHfCheckpoint(tmp.resolve("plain"), TINY, weights, DType.F32, false);
        writeHfCheckpoint(tmp.resolve("bf16"), TINY, weights, DType.BF16, true);
        for (String name : List.of("prefixed", "plain")) {
            Gpt2Model loaded = Gpt2Model.load(tmp.resolve(name), null, 0);
            // same weights, so the same loss bit for bit
            assertEquals(f32Loss, loaded.forward(loaded.newWorkspace(BATCH, SEQ), ids, labels, false, 0), name);
        }
        Gpt2Model bf16 = Gpt2Model.load(tmp.resolve("bf16"), ALL_LINEAR, 0);
        double bf16Loss = bf16.forward(bf16.newWorkspace(BATCH, SEQ), ids, labels, false, 0);
        assertFalse(bf16Loss == f32Loss, "BF16 rounding should show");
        assertEquals(f32Loss, bf16Loss, 0.005 * f32Loss);
    }

    @Test
    void aCheckpointThatDoesNotMatchItsConfigIsAClearError(@TempDir Path tmp) throws IOException {
        Map<String, float[]> weights = randomWeights(TINY, 45);
        Gpt2Config wider = new Gpt2Config(37, 16, 16, 2, 4, 32, 1e-5);
        writeHfCheckpoint(tmp, TINY, weights, DType.F32, true);
        Files.writeString(tmp.resolve("config.json"), wider.toJson(), StandardCharsets.UTF_8);
        var e = assertThrows(CheckpointLayoutException.class, () -> Gpt2Model.load(tmp, null, 0));
        assertTrue(e.getMessage().contains("tensor transformer.h.0.mlp.c_fc.weight: expected shape [16, 32], found [16, 24]"),
                e.getMessage());

        Files.writeString(tmp.resolve("config.json"), """
                {"model_type": "llama", "vocab_size": 37, "hidden_size": 16, "intermediate_size": 24,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 16}
                """, StandardCharsets.UTF_8);
        var llama = assertThrows(ModelConfigException.class, () -> Gpt2Model.load(tmp, null, 0));
        assertTrue(llama.getMessage().contains("\"llama\" is not \"gpt2\""), llama.getMessage());
    }
}
