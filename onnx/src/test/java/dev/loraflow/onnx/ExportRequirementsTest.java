package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.WeightQuantization.Precision;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The disk an export says it needs, checked before it starts, bounds what it writes, and closely: a quantized
 * graph is measured at its own size, not at the float32 one (an 8 B model's int4 graph is about 9 GB, its
 * float32 bound 32 GB, which a machine with the room for the int4 graph may not have).
 */
class ExportRequirementsTest {

    /** Big enough that the weights, not the graph's nodes, make the file: 2 layers × 256, vocabulary 1024, untied. */
    private static final DecoderConfig MODEL = DecoderConfig.llama(1024, 256, 512, 2, 4, 2, 64, 128, 1e-5, 10000, false);

    @TempDir
    Path dir;

    static Stream<Arguments> quantizations() {
        return Stream.of(WeightQuantization.none(), WeightQuantization.of(Precision.INT8),
                WeightQuantization.of(Precision.INT8).withEmbeddingsInt8(true), WeightQuantization.of(Precision.INT4),
                WeightQuantization.of(Precision.INT4).withZeroPoints(true).withBlockSize(128),
                WeightQuantization.of(Precision.INT4).withEmbeddingsInt8(true)).map(quantization -> Arguments.of(
                quantization.describe(), quantization));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("quantizations")
    void theDiskAnExportNeedsBoundsItsFilesWithinAFewPercent(String name, WeightQuantization quantization)
            throws Exception {
        Path model = dir.resolve("model");
        RandomModel.write(MODEL, 7, DType.BF16, model);
        OnnxExporter.Requirements needs = OnnxExporter.requirements(model, quantization);

        OnnxExporter.Result result = OnnxExporter.exportDirectory(model, null, Options.defaults()
                .withExternalData(OnnxExporter.ExternalData.ALWAYS).withQuantization(quantization), dir.resolve("out")
                .resolve("model.onnx"));

        long written = Files.size(result.model()) + Files.size(result.externalData());
        assertTrue(written <= needs.diskBytes(), name + ": wrote " + written + " bytes, more than the " + needs.diskBytes()
                + " it said it needs");
        // The bound's margin (1/64 and 1 MiB for the graph around the weights) and nothing more.
        assertTrue(needs.diskBytes() <= written + written / 32 + (1L << 20), name + ": said " + needs.diskBytes()
                + " bytes for " + written + " written");
        long float32 = OnnxExporter.requirements(model).diskBytes();
        if (quantization.quantized()) {
            assertTrue(needs.diskBytes() < float32, name + ": the quantized graph's bound is below the float32 one");
        }
    }
}
