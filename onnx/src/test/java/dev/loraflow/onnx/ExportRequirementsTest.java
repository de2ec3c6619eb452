package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.LinearModule;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.WeightQuantization.Precision;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
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

    @Test
    void theHeapCountsTheLargestWeightFormedWholeNotTheHeadWrittenInChunksUnlessAnAdapterAdaptsIt() throws Exception {
        Path model = dir.resolve("model");
        RandomModel.write(MODEL, 7, DType.BF16, model);
        long head = 4L * MODEL.vocabSize() * MODEL.hiddenSize();
        long largestLinear = 4L * MODEL.intermediateSize() * MODEL.hiddenSize();
        assertTrue(head > largestLinear);
        WeightQuantization int4 = WeightQuantization.of(Precision.INT4);
        long plain = OnnxExporter.requirements(model, int4).heapBytes();

        Path onAttention = dir.resolve("adapter-q");
        adapter(List.of("model.layers.0.self_attn.q_proj")).write(onAttention, DType.F32);
        long adapterHeap = 4 * Files.size(onAttention.resolve(PeftAdapter.WEIGHTS_FILE));
        assertEquals(plain + adapterHeap, OnnxExporter.requirements(model, onAttention, int4).heapBytes());

        Path onHead = dir.resolve("adapter-head");
        adapter(List.of(ModelLayout.OUTPUT_HEAD)).write(onHead, DType.F32);
        assertEquals(plain + 2 * (head - largestLinear) + 4 * Files.size(onHead.resolve(PeftAdapter.WEIGHTS_FILE)),
                OnnxExporter.requirements(model, onHead, int4).heapBytes());
    }

    /** A rank-2 adapter on {@code modules} of {@link #MODEL}. */
    private static PeftAdapter adapter(List<String> modules) {
        LoraAdapterConfig config = LoraAdapterConfig.builder().r(2).targetModules(modules.toArray(String[]::new)).build();
        ModelLayout layout = ModelLayout.of(MODEL);
        Map<String, LoraWeights> weights = new LinkedHashMap<>();
        for (String path : modules) {
            LinearModule module = layout.linearModules().stream().filter(m -> layout.peftModulePath(m.path()).equals(path))
                    .findFirst().orElseThrow();
            weights.put(path, new LoraWeights(path, 2, module.in(), module.out(), new float[2 * module.in()],
                    new float[2 * module.out()]));
        }
        return new PeftAdapter(config, weights);
    }
}
