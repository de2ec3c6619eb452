package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.onnx.OnnxExporter.ExternalData;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The reference checker of the onnx package, strict mode with shape inference, where the machine has it
 * (Debian's python3-onnx is 1.12, the oldest the IR-version choice targets); skipped elsewhere.
 */
class OnnxCheckerTest {

    private static final String CHECK = "import onnx, sys; onnx.checker.check_model(sys.argv[1], full_check=True);"
            + " print(onnx.__version__)";

    @TempDir
    Path dir;

    /** The first of these that imports onnx: a pyenv or venv python3 on the PATH may lack the system's package. */
    private static final List<String> INTERPRETERS = List.of("python3", "/usr/bin/python3");

    private static String python;

    @BeforeAll
    static void needsPythonOnnx() throws Exception {
        for (String interpreter : INTERPRETERS) {
            if (python == null && run(List.of(interpreter, "-c", "import onnx")).exitCode() == 0) {
                python = interpreter;
            }
        }
        assumeTrue(python != null, "a python3 with the onnx package");
    }

    private record Outcome(int exitCode, String output) {}

    private static Outcome run(List<String> command) throws InterruptedException {
        try {
            Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(120, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                return new Outcome(-1, "timed out");
            }
            return new Outcome(process.exitValue(), output);
        } catch (IOException e) {
            return new Outcome(-1, e.getMessage());
        }
    }

    static Stream<Arguments> exports() {
        return Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED).flatMap(config -> Stream.of(
                Arguments.of(config.modelType(), config, Options.defaults()),
                Arguments.of(config.modelType(), config, Options.defaults().withUnmerged(true)),
                Arguments.of(config.modelType(), config, Options.defaults().withExternalData(ExternalData.ALWAYS)),
                Arguments.of(config.modelType(), config, Options.defaults()
                        .withQuantization(WeightQuantization.of(WeightQuantization.Precision.INT8).withEmbeddingsInt8(true))),
                Arguments.of(config.modelType(), config, Options.defaults().withUnmerged(true)
                        .withQuantization(WeightQuantization.of(WeightQuantization.Precision.INT4).withZeroPoints(true)))));
    }

    @ParameterizedTest(name = "{0} {2}")
    @MethodSource("exports")
    void onnxCheckerAcceptsTheExport(String arch, ModelConfig config, Options options) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 1);
        CausalLanguageModel model = TestModels.adapted(config, weights, 2);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, options, new Provenance(null, null, null), file);
        Outcome outcome = run(List.of(python, "-c", CHECK, file.toString()));
        assertEquals(0, outcome.exitCode(), outcome.output());
    }
}
