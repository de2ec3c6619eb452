package dev.loraflow.export.onnx;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.export.onnx.OnnxExporter.Options;
import dev.loraflow.export.onnx.OnnxExporter.Provenance;
import dev.loraflow.export.onnx.OnnxVerifier.Probe;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The exported graph under ONNX Runtime against core's Java forward, both architectures. */
class OnnxExportTest {

    private static final Provenance NONE = new Provenance(null, null, null);

    @TempDir
    Path dir;

    static Stream<Arguments> probes() {
        return Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED).flatMap(config -> Stream.of(
                Arguments.of(config.modelType(), config, new Probe(1, 6, 4, true, 1)),
                Arguments.of(config.modelType(), config, new Probe(4, 7, 5, true, 2)),
                Arguments.of(config.modelType(), config, new Probe(1, 6, 3, false, 3)),
                Arguments.of(config.modelType(), config, new Probe(4, 7, 3, false, 4)),
                Arguments.of(config.modelType(), config, new Probe(4, 7, 0, true, 5))));
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
}
