package dev.loraflow.core.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.LinearModule;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.HalfFloats;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.TensorInfo;
import dev.loraflow.core.train.TrainingCheckpoint;
import dev.loraflow.core.merge.LoraMerge.OutputDType;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.ToDoubleFunction;
import java.util.function.ToIntFunction;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class LoraMergeTest {

    @TempDir
    Path temp;

    static Stream<Arguments> architecturesAndDtypes() {
        return Stream.of(Arguments.of(MergeFixtures.GPT2, DType.F32), Arguments.of(MergeFixtures.GPT2, DType.BF16),
                Arguments.of(MergeFixtures.LLAMA, DType.F32), Arguments.of(MergeFixtures.LLAMA, DType.BF16));
    }

    @ParameterizedTest
    @MethodSource("architecturesAndDtypes")
    void theMergedModelComputesWhatTheUnmergedAdapterDoes(ModelConfig config, DType dtype) throws IOException {
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, MergeFixtures.weights(config, 1), dtype, true);
        PeftAdapter adapter = MergeFixtures.adapter(config, MergeFixtures.lora(config), 2, 0.3f);
        Path adapterDir = temp.resolve("adapter");
        adapter.write(adapterDir, DType.F32);

        LoraMerge.Result result = LoraMerge.mergeDirectory(base, adapterDir, temp.resolve("merged"), LoraMerge.Options.defaults());
        assertEquals(Set.of(dtype), result.dtypes());
        assertEquals(adapter.modules().size(), result.modules().size());
        try (SafetensorsFile merged = SafetensorsFile.open(result.directory().resolve("model.safetensors"))) {
            for (TensorInfo tensor : merged.tensors()) {
                assertEquals(dtype, tensor.dtype(), tensor.name());
            }
        }

        CausalLanguageModel unmerged = CausalLanguageModel.load(base, adapter.config(), 0);
        unmerged.loadAdapter(adapter);
        float[] expected = logits(unmerged);
        float[] baseOnly = logits(CausalLanguageModel.load(base, null, 0));
        float[] actual = logits(CausalLanguageModel.load(result.directory(), null, 0));
        double scale = maxAbs(expected);
        // F32: only float rounding of W0 + s·B·A differs (measured ~5e-7 of the logits' range). BF16 keeps 8
        // significant bits, so each merged weight moves by up to 2^-9 of itself; through two blocks that
        // measured 0.5–0.8% of the range, and the bound leaves room for other seeds.
        double tolerance = dtype == DType.F32 ? 1e-5 * scale : 0.03 * scale;
        double error = maxAbsDifference(expected, actual);
        assertTrue(error <= tolerance, config.modelType() + " " + dtype + ": max |Δlogit| " + error + " > " + tolerance);
        assertTrue(maxAbsDifference(expected, baseOnly) > 10 * tolerance, "the adapter changes the logits far beyond the tolerance");
    }

    @Test
    void bf16MergedWeightsAreTheFloat32SumRoundedOnce() throws IOException {
        ModelConfig config = MergeFixtures.LLAMA;
        Map<String, float[]> weights = MergeFixtures.weights(config, 3);
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, weights, DType.BF16, false);
        PeftAdapter adapter = MergeFixtures.adapter(config, MergeFixtures.lora(config), 4, 0.3f);
        LoraMerge.Result result = LoraMerge.merge(base, adapter, null, temp.resolve("merged"), LoraMerge.Options.defaults());

        ModelLayout layout = ModelLayout.of(config);
        try (SafetensorsFile merged = SafetensorsFile.open(result.directory().resolve("model.safetensors"))) {
            for (LoraWeights factors : adapter.modules().values()) {
                String tensor = layout.canonicalModulePath(factors.modulePath()) + ".weight";
                float[] w0 = roundedToBf16(weights.get(tensor));
                double[] exact = formula(w0, factors, adapter.config().scaling(factors.modulePath()), false);
                float[] stored = merged.readFloat32(tensor);
                for (int i = 0; i < stored.length; i++) {
                    // One rounding of a value within float32 error of the exact sum: at most one BF16 step off.
                    double step = Math.ulp(stored[i]) * (1 << 16);
                    assertTrue(Math.abs(stored[i] - exact[i]) <= step, tensor + "[" + i + "]: " + stored[i] + " vs " + exact[i]);
                }
            }
        }
    }

    private static final String GPT2_PEFT_CONFIG = """
            {
              "alpha_pattern": {
                "h.1.attn.c_attn": 32
              },
              "auto_mapping": null,
              "base_model_name_or_path": "gpt2",
              "bias": "none",
              "corda_config": null,
              "eva_config": null,
              "exclude_modules": null,
              "fan_in_fan_out": true,
              "inference_mode": true,
              "init_lora_weights": true,
              "layer_replication": null,
              "layers_pattern": null,
              "layers_to_transform": null,
              "loftq_config": {},
              "lora_alpha": 8,
              "lora_bias": false,
              "lora_dropout": 0.05,
              "megatron_config": null,
              "megatron_core": "megatron.core",
              "modules_to_save": null,
              "peft_type": "LORA",
              "peft_version": "0.18.1",
              "r": 2,
              "rank_pattern": {
                "c_fc": 4
              },
              "revision": null,
              "target_modules": [
                "c_fc",
                "c_attn",
                "c_proj"
              ],
              "target_parameters": null,
              "task_type": "CAUSAL_LM",
              "trainable_token_indices": null,
              "use_dora": false,
              "use_rslora": false
            }
            """;

    private static final String LLAMA_PEFT_CONFIG = """
            {
              "alpha_pattern": {
                "model.layers.0.mlp.down_proj": 2
              },
              "auto_mapping": null,
              "base_model_name_or_path": "meta-llama/Llama-3.2-1B",
              "bias": "none",
              "exclude_modules": null,
              "fan_in_fan_out": false,
              "inference_mode": true,
              "init_lora_weights": true,
              "layers_pattern": null,
              "layers_to_transform": null,
              "lora_alpha": 8,
              "lora_dropout": 0.0,
              "modules_to_save": null,
              "peft_type": "LORA",
              "r": 4,
              "rank_pattern": {
                "q_proj": 2
              },
              "revision": null,
              "target_modules": [
                "q_proj",
                "v_proj",
                "down_proj"
              ],
              "task_type": "CAUSAL_LM",
              "use_dora": false,
              "use_rslora": true
            }
            """;

    /** r and α per module as the two configs above assign them, worked out by hand. */
    private static int gpt2Rank(String path) {
        return path.endsWith(".c_fc") ? 4 : 2;
    }

    private static double gpt2Scaling(String path) {
        double alpha = path.equals("transformer.h.1.attn.c_attn") ? 32 : 8;
        return alpha / gpt2Rank(path);
    }

    private static int llamaRank(String path) {
        return path.endsWith(".q_proj") ? 2 : 4;
    }

    private static double llamaScaling(String path) {
        double alpha = path.equals("model.layers.0.mlp.down_proj") ? 2 : 8;
        return alpha / Math.sqrt(llamaRank(path));
    }

    @Test
    void aPeftAdapterMergesIntoGpt2Conv1dWeightsTransposed() throws IOException {
        // The hub's gpt2 checkpoint layout: no transformer. prefix, causal-mask buffers, a tied lm_head saved.
        Map<String, float[]> extras = new LinkedHashMap<>();
        extras.put("h.0.attn.bias", new float[] {1, 0, 1, 1});
        extras.put("lm_head.weight", new float[] {0.5f, 0.25f});
        checkPeftLayout(MergeFixtures.GPT2, GPT2_PEFT_CONFIG, List.of("c_fc", "c_attn", "c_proj"),
                LoraMergeTest::gpt2Rank, LoraMergeTest::gpt2Scaling, false, extras);
    }

    @Test
    void aPeftAdapterMergesIntoGpt2WeightsSavedWithTheTransformerPrefix() throws IOException {
        checkPeftLayout(MergeFixtures.GPT2, GPT2_PEFT_CONFIG, List.of("c_fc", "c_attn", "c_proj"),
                LoraMergeTest::gpt2Rank, LoraMergeTest::gpt2Scaling, true, Map.of());
    }

    @Test
    void aPeftAdapterMergesIntoLlamaLinearWeights() throws IOException {
        checkPeftLayout(MergeFixtures.LLAMA, LLAMA_PEFT_CONFIG, List.of("q_proj", "v_proj", "down_proj"),
                LoraMergeTest::llamaRank, LoraMergeTest::llamaScaling, false, Map.of());
    }

    private void checkPeftLayout(ModelConfig config, String adapterConfig, List<String> targetNames,
                                 ToIntFunction<String> rank, ToDoubleFunction<String> scaling, boolean gpt2Prefix,
                                 Map<String, float[]> extras) throws IOException {
        Map<String, float[]> weights = MergeFixtures.weights(config, 5);
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, weights, DType.F32, gpt2Prefix, extras);
        ModelLayout layout = ModelLayout.of(config);
        Rng rng = new Rng(6);
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (LinearModule module : layout.linearModules()) {
            String path = layout.peftModulePath(module.path());
            if (targetNames.contains(module.baseName())) {
                int r = rank.applyAsInt(path);
                modules.put(path, new LoraWeights(path, r, module.in(), module.out(), uniform(rng, r * module.in(), 0.5f),
                        uniform(rng, module.out() * r, 0.1f)));
            }
        }
        Path adapterDir = MergeFixtures.writePeftLayout(temp.resolve("adapter"), adapterConfig, modules);

        LoraMerge.Result result = LoraMerge.mergeDirectory(base, adapterDir, temp.resolve("merged"), LoraMerge.Options.defaults());

        assertEquals(modules.keySet(), Set.copyOf(result.modules().stream().map(LoraMerge.MergedModule::modulePath).toList()));
        assertArrayEquals(Files.readAllBytes(base.resolve("config.json")), Files.readAllBytes(result.directory().resolve("config.json")));
        assertArrayEquals(Files.readAllBytes(base.resolve("tokenizer.json")),
                Files.readAllBytes(result.directory().resolve("tokenizer.json")));
        try (SafetensorsFile original = SafetensorsFile.open(base.resolve("model.safetensors"));
             SafetensorsFile merged = SafetensorsFile.open(result.directory().resolve("model.safetensors"))) {
            Set<String> expectedNames = new HashSet<>(original.tensorNames());
            if (config.tieWordEmbeddings()) {
                expectedNames.remove("lm_head.weight");
            }
            assertEquals(expectedNames, Set.copyOf(merged.tensorNames()), "the base's names, less a tied head");
            assertEquals("pt", merged.metadata().get("format"));
            Map<String, LoraWeights> byTensor = new LinkedHashMap<>();
            modules.values().forEach(f -> byTensor.put(MergeFixtures.savedName(layout,
                    layout.canonicalModulePath(f.modulePath()) + ".weight", gpt2Prefix), f));
            for (String name : merged.tensorNames()) {
                LoraWeights factors = byTensor.get(name);
                if (factors == null) {
                    assertArrayEquals(original.rawBytes(name).toArray(ValueLayout.JAVA_BYTE),
                            merged.rawBytes(name).toArray(ValueLayout.JAVA_BYTE), name + " is not adapted: copied bit for bit");
                    continue;
                }
                boolean conv1d = config instanceof Gpt2Config;
                double s = scaling.applyAsDouble(factors.modulePath());
                float[] before = original.readFloat32(name);
                double[] expected = formula(before, factors, s, conv1d);
                float[] actual = merged.readFloat32(name);
                double largestUpdate = 0;
                for (int i = 0; i < actual.length; i++) {
                    double bound = 1e-6 * (Math.abs(expected[i]) + 1);
                    assertTrue(Math.abs(actual[i] - expected[i]) <= bound, name + "[" + i + "]: " + actual[i] + " vs " + expected[i]);
                    largestUpdate = Math.max(largestUpdate, Math.abs(expected[i] - before[i]));
                }
                assertTrue(largestUpdate > 1e-3, name + " was changed by the merge");
            }
        }
    }

    /** W0 + s·B·A in double, [out, in]; or its transpose layout for Conv1D, W [in, out] + s·(B·A)ᵀ. */
    private static double[] formula(float[] w0, LoraWeights f, double s, boolean conv1d) {
        int in = f.inFeatures();
        int out = f.outFeatures();
        double[] w = new double[w0.length];
        for (int o = 0; o < out; o++) {
            for (int j = 0; j < in; j++) {
                double delta = 0;
                for (int k = 0; k < f.r(); k++) {
                    delta += (double) f.b()[o * f.r() + k] * f.a()[k * in + j];
                }
                int index = conv1d ? j * out + o : o * in + j;
                w[index] = w0[index] + s * delta;
            }
        }
        return w;
    }

    @Test
    void everyMismatchIsRefusedWithItsKindAndTheModuleNamed() throws IOException {
        ModelConfig config = MergeFixtures.GPT2;
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, MergeFixtures.weights(config, 1), DType.F32, true);
        LoraAdapterConfig lora = MergeFixtures.lora(config);
        PeftAdapter good = MergeFixtures.adapter(config, lora, 2, 0.3f);
        Path out = temp.resolve("out");

        MergeException sha = assertThrows(MergeException.class, () -> LoraMerge.merge(base, good, null, out,
                LoraMerge.Options.defaults().withExpectedBaseSha256("0".repeat(64))));
        assertEquals(MergeException.Kind.BASE_SHA256_MISMATCH, sha.kind());
        assertTrue(sha.getMessage().contains(ModelDigest.of(base)), sha.getMessage());

        Map<String, LoraWeights> extra = new LinkedHashMap<>(good.modules());
        LoraWeights first = good.modules().values().iterator().next();
        extra.put("transformer.h.7.attn.c_attn", new LoraWeights("transformer.h.7.attn.c_attn", 2, first.inFeatures(),
                first.outFeatures(), first.a(), first.b()));
        MergeException missing = assertThrows(MergeException.class,
                () -> LoraMerge.merge(base, new PeftAdapter(lora, extra), null, out, LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.MISSING_TARGET_MODULE, missing.kind());
        assertTrue(missing.getMessage().contains("transformer.h.7.attn.c_attn"), missing.getMessage());

        PeftAdapter wider = MergeFixtures.adapter(new Gpt2Config(41, 32, 24, 2, 4, 28, 1e-5), lora, 2, 0.3f);
        MergeException shape = assertThrows(MergeException.class,
                () -> LoraMerge.merge(base, wider, null, out, LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.SHAPE_MISMATCH, shape.kind());
        assertTrue(shape.getMessage().contains("transformer.h.0.attn.c_attn") && shape.getMessage().contains("[20, 60]"),
                shape.getMessage());

        Map<String, LoraWeights> poisoned = new LinkedHashMap<>(good.modules());
        LoraWeights victim = good.modules().get("transformer.h.1.mlp.c_fc");
        float[] a = victim.a().clone();
        a[7] = Float.NaN;
        poisoned.put(victim.modulePath(), new LoraWeights(victim.modulePath(), victim.r(), victim.inFeatures(),
                victim.outFeatures(), a, victim.b()));
        MergeException nan = assertThrows(MergeException.class,
                () -> LoraMerge.merge(base, new PeftAdapter(lora, poisoned), null, out, LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.NON_FINITE, nan.kind());
        assertTrue(nan.getMessage().contains("transformer.h.1.mlp.c_fc") && nan.getMessage().contains("lora_A"), nan.getMessage());

        float[] huge = new float[victim.b().length];
        java.util.Arrays.fill(huge, 3e38f);
        float[] ones = new float[victim.a().length];
        java.util.Arrays.fill(ones, 1f);
        poisoned.put(victim.modulePath(), new LoraWeights(victim.modulePath(), victim.r(), victim.inFeatures(),
                victim.outFeatures(), ones, huge));
        MergeException overflow = assertThrows(MergeException.class,
                () -> LoraMerge.merge(base, new PeftAdapter(lora, poisoned), null, out, LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.NON_FINITE, overflow.kind());
        assertTrue(overflow.getMessage().contains("transformer.h.1.mlp.c_fc"), overflow.getMessage());

        LoraAdapterConfig head = LoraAdapterConfig.builder().r(2).loraAlpha(4).targetModules("lm_head").build();
        MergeException tied = assertThrows(MergeException.class, () -> LoraMerge.merge(base,
                MergeFixtures.adapter(config, head, 2, 0.3f), null, out, LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.UNSUPPORTED, tied.kind());

        assertFalse(Files.exists(out), "a refused merge writes nothing");
    }

    @Test
    void aTrainerCheckpointIsCheckedAgainstTheBaseItRecordsAndOutputsNeverOverwrite() throws IOException {
        ModelConfig config = MergeFixtures.LLAMA;
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, MergeFixtures.weights(config, 1), DType.F32, false);
        Path adapterDir = temp.resolve("adapter");
        MergeFixtures.adapter(config, MergeFixtures.lora(config), 2, 0.3f).write(adapterDir, DType.F32);

        Files.writeString(adapterDir.resolve(TrainingCheckpoint.STATE_FILE), trainingState("ab".repeat(32)));
        MergeException mismatch = assertThrows(MergeException.class, () -> LoraMerge.mergeDirectory(base, adapterDir,
                temp.resolve("a"), LoraMerge.Options.defaults()));
        assertEquals(MergeException.Kind.BASE_SHA256_MISMATCH, mismatch.kind());
        assertFalse(Files.exists(temp.resolve("a")), "the merge written before the base's digest was known is dropped");

        Files.writeString(adapterDir.resolve(TrainingCheckpoint.STATE_FILE), trainingState(ModelDigest.of(base)));
        LoraMerge.Result result = LoraMerge.mergeDirectory(base, adapterDir, temp.resolve("a"),
                LoraMerge.Options.defaults().withDtype(OutputDType.BF16));
        assertEquals(Set.of(DType.BF16), result.dtypes());
        assertEquals(ModelDigest.of(base), result.baseSha256());
        assertThrows(java.nio.file.FileAlreadyExistsException.class, () -> LoraMerge.mergeDirectory(base, adapterDir,
                temp.resolve("a"), LoraMerge.Options.defaults()));
    }

    /** A training checkpoint's state file as far as a merge reads it: the base digest the run recorded. */
    private static String trainingState(String baseSha256) {
        return "{\"format\": \"loraflow.training-state\", \"version\": 1, \"base_sha256\": \"" + baseSha256 + "\"}";
    }

    @Test
    void inMemoryMergeReplacesOnlyTheAdaptedWeights() throws IOException {
        ModelConfig config = MergeFixtures.GPT2;
        Map<String, float[]> weights = MergeFixtures.weights(config, 8);
        PeftAdapter adapter = MergeFixtures.adapter(config, MergeFixtures.lora(config), 9, 0.3f);
        Map<String, float[]> snapshot = new LinkedHashMap<>();
        weights.forEach((name, values) -> snapshot.put(name, values.clone()));

        Map<String, float[]> merged = LoraMerge.mergeWeights(ModelLayout.of(config), weights, adapter);

        CausalLanguageModel unmerged = CausalLanguageModel.create(config, weights, adapter.config(), 0);
        unmerged.loadAdapter(adapter);
        unmerged.merge();
        for (var entry : merged.entrySet()) {
            assertArrayEquals(snapshot.get(entry.getKey()), weights.get(entry.getKey()), "the input is never written");
        }
        for (var module : unmerged.adaptedModules().entrySet()) {
            String tensor = ModelLayout.of(config).canonicalModulePath(module.getKey()) + ".weight";
            float[] expected = module.getValue().weight();
            float[] actual = merged.get(tensor);
            for (int i = 0; i < expected.length; i++) {
                assertEquals(expected[i], actual[i], 1e-6 * (1 + Math.abs(expected[i])), tensor + "[" + i + "]");
            }
        }
        assertTrue(merged.get("wte.weight") == weights.get("wte.weight"), "unadapted tensors are shared, not copied");
    }

    private static float[] logits(CausalLanguageModel model) {
        int batch = 2;
        int seqLen = 9;
        int[] ids = new int[batch * seqLen];
        Rng rng = new Rng(42);
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) Long.remainderUnsigned(rng.nextLong(), model.config().vocabSize());
        }
        CausalLanguageModel.Workspace ws = model.newWorkspace(batch, seqLen);
        model.forward(ws, ids, null, false, 0);
        return ws.logits().clone();
    }

    private static double maxAbs(float[] values) {
        double max = 0;
        for (float value : values) {
            max = Math.max(max, Math.abs(value));
        }
        return max;
    }

    private static double maxAbsDifference(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs((double) a[i] - b[i]));
        }
        return max;
    }

    private static float[] uniform(Rng rng, int n, float bound) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = rng.nextUniform(bound);
        }
        return values;
    }

    private static float[] roundedToBf16(float[] values) {
        float[] rounded = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            rounded[i] = HalfFloats.fromBf16(HalfFloats.toBf16(values[i]));
        }
        return rounded;
    }
}
