package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.TinyModels;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import dev.loraflow.onnx.OnnxVerifier.Probe;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The exported graph under ONNX Runtime against core's Java forward, GPT-2 and every decoder family. */
class OnnxExportTest {

    private static final Provenance NONE = new Provenance(null, null, null);

    @TempDir
    Path dir;

    static Stream<Arguments> probes() {
        Stream<Arguments> gpt2AndLlama = Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED)
                .flatMap(config -> Stream.of(
                        Arguments.of(config.modelType(), config, new Probe(1, 6, 4, true, 1)),
                        Arguments.of(config.modelType(), config, new Probe(4, 7, 5, true, 2)),
                        Arguments.of(config.modelType(), config, new Probe(1, 6, 3, false, 3)),
                        Arguments.of(config.modelType(), config, new Probe(4, 7, 3, false, 4)),
                        Arguments.of(config.modelType(), config, new Probe(4, 7, 0, true, 5))));
        // Each family padded and through the KV cache, and without it; 7 + 5 tokens pass every tiny window (3 to 5).
        Stream<Arguments> families = TestModels.FAMILIES.stream().flatMap(config -> Stream.of(
                Arguments.of(TinyModels.name(config), config, new Probe(4, 7, 5, true, 2)),
                Arguments.of(TinyModels.name(config), config, new Probe(4, 7, 3, false, 4))));
        return Stream.concat(gpt2AndLlama, families);
    }

    @ParameterizedTest(name = "{0} {2}")
    @MethodSource("probes")
    void mergedExportMatchesTheUnmergedJavaForward(String arch, ModelConfig config, Probe probe) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 11);
        CausalLanguageModel model = TestModels.adapted(config, weights, 12);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, Options.defaults(), NONE, file);
        OnnxVerifier.Result result = OnnxVerifier.verify(file, model, probe, Map.of(), OnnxVerifier.DEFAULT_TOLERANCE, 1);
        System.out.println(arch + " " + probe + ": " + result.summary());
        assertTrue(result.passed(), result.summary());
    }

    static Stream<Arguments> architectures() {
        return Stream.concat(Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED), TestModels.FAMILIES.stream())
                .map(config -> Arguments.of(TinyModels.name(config) + (config.tieWordEmbeddings() ? " tied" : ""), config));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void unmergedExportFedTheAdapterMatchesTheAdaptedModelAndFedNothingTheBaseModel(String arch, ModelConfig config)
            throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 21);
        CausalLanguageModel adapted = TestModels.adapted(config, weights, 22);
        Path file = dir.resolve("unmerged.onnx");
        OnnxExporter.Result export = OnnxExporter.export(adapted, weights, Options.defaults().withUnmerged(true), NONE, file);
        assertEquals(3 * adapted.adaptedModules().size(), export.loraInputs().size());

        Map<String, FloatTensor> adapter = LoraInputs.of(adapted.toPeftAdapter());
        assertEquals(Set.copyOf(export.loraInputs()), adapter.keySet());
        Probe probe = Probe.standard();
        OnnxVerifier.Result withAdapter = OnnxVerifier.verify(file, adapted, probe, adapter, OnnxVerifier.DEFAULT_TOLERANCE, 1);
        assertTrue(withAdapter.passed(), "fed the adapter: " + withAdapter.summary());

        CausalLanguageModel base = TestModels.base(config, weights);
        OnnxVerifier.Result withNothing = OnnxVerifier.verify(file, base, probe, Map.of(), OnnxVerifier.DEFAULT_TOLERANCE, 1);
        assertTrue(withNothing.passed(), "fed nothing: " + withNothing.summary());

        // The adapter moves the logits far beyond the tolerance, so the two checks above are not the same check.
        OnnxVerifier.Result baseAgainstAdapted = OnnxVerifier.verify(file, adapted, probe, Map.of(),
                OnnxVerifier.DEFAULT_TOLERANCE, 1);
        assertFalse(baseAgainstAdapted.passed());
        assertTrue(baseAgainstAdapted.maxAbsError() > 0.1, baseAgainstAdapted.summary());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void mergedAndUnmergedGraphsGiveTheSameLogits(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 31);
        CausalLanguageModel adapted = TestModels.adapted(config, weights, 32);
        Path merged = dir.resolve("merged.onnx");
        Path unmerged = dir.resolve("unmerged.onnx");
        OnnxExporter.export(adapted, weights, Options.defaults(), NONE, merged);
        OnnxExporter.export(adapted, weights, Options.defaults().withUnmerged(true), NONE, unmerged);
        Map<String, FloatTensor> adapter = LoraInputs.of(adapted.toPeftAdapter());

        long[][] ids = {{3, 1, 4, 1, 5}, {9, 2, 6, 0, 0}};
        long[][] mask = {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}};
        float[] mergedLogits = OrtRuns.prefillLogits(merged, config, ids, mask, Map.of());
        float[] unmergedLogits = OrtRuns.prefillLogits(unmerged, config, ids, mask, adapter);
        assertEquals(mergedLogits.length, unmergedLogits.length);
        for (int i = 0; i < mergedLogits.length; i++) {
            assertEquals(mergedLogits[i], unmergedLogits[i], 1e-4, "logit " + i);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void aBaseModelExportsWithoutAdapters(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 41);
        CausalLanguageModel base = TestModels.base(config, weights);
        Path file = dir.resolve("base.onnx");
        OnnxExporter.Result export = OnnxExporter.export(base, weights, Options.defaults(), NONE, file);
        assertTrue(export.loraInputs().isEmpty());
        OnnxVerifier.Result result = OnnxVerifier.verify(file, base);
        assertTrue(result.passed(), result.summary());
        int promptRows = 7 + 5 + 3 + 1;
        assertEquals(promptRows + 4 * 5, result.rowsChecked());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void theExportLeavesTheModelUnmerged(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 51);
        CausalLanguageModel adapted = TestModels.adapted(config, weights, 52);
        float[] before = OrtRuns.javaLogits(adapted, new int[] {1, 2, 3});
        OnnxExporter.export(adapted, weights, Options.defaults(), NONE, dir.resolve("model.onnx"));
        assertTrue(adapted.adaptedModules().values().stream().noneMatch(module -> module.isMerged()));
        assertArrayEquals(before, OrtRuns.javaLogits(adapted, new int[] {1, 2, 3}));
    }
}
