package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtSession;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.LinearModule;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.onnx.OnnxExporter.ExternalData;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import dev.loraflow.onnx.OnnxVerifier.QuantizedBounds;
import dev.loraflow.onnx.ProtoReader.Message;
import dev.loraflow.onnx.WeightQuantization.Precision;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** int8 and int4 exports: the block arithmetic against a scalar reference, the file's structure, ONNX Runtime's logits. */
class QuantizedExportTest {

    // onnx.proto field numbers
    private static final int MODEL_GRAPH = 7;
    private static final int MODEL_OPSET_IMPORT = 8;
    private static final int GRAPH_NODE = 1;
    private static final int GRAPH_INITIALIZER = 5;
    private static final int GRAPH_INPUT = 11;
    private static final int NODE_INPUT = 1;
    private static final int NODE_OUTPUT = 2;
    private static final int NODE_OP_TYPE = 4;
    private static final int NODE_ATTRIBUTE = 5;
    private static final int NODE_DOMAIN = 7;
    private static final int ATTRIBUTE_NAME = 1;
    private static final int ATTRIBUTE_INT = 3;
    private static final int TENSOR_DIMS = 1;
    private static final int TENSOR_DATA_TYPE = 2;
    private static final int TENSOR_NAME = 8;
    private static final int TENSOR_RAW_DATA = 9;
    private static final int VALUE_INFO_NAME = 1;

    @TempDir
    Path dir;

    /** The dequantized int4 value of a reference written from the formulas, element by element. */
    private static float[] referenceInt4(float[] w, int in, int out, int blockSize, boolean zeroPoints, int[] codes) {
        float[] dequantized = new float[in * out];
        for (int n = 0; n < out; n++) {
            for (int first = 0; first < in; first += blockSize) {
                double lo = 0;
                double hi = 0;
                double largest = 0;
                for (int k = first; k < Math.min(in, first + blockSize); k++) {
                    double v = w[n * in + k];
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                    largest = Math.abs(v) > Math.abs(largest) ? v : largest;
                }
                double scale = zeroPoints ? (hi - lo) / 15 : largest / -8;
                long zero = zeroPoints ? Math.min(15, Math.max(0, Math.round(-lo / scale))) : 8;
                for (int k = first; k < Math.min(in, first + blockSize); k++) {
                    long q = Math.min(15, Math.max(0, Math.round(w[n * in + k] / scale + zero)));
                    codes[n * in + k] = (int) q;
                    dequantized[n * in + k] = (float) ((q - zero) * scale);
                }
            }
        }
        return dequantized;
    }

    @Test
    void int4BlocksAreMatMulNBitsLayoutAndEqualAScalarReference() {
        int in = 70; // not a whole number of blocks: the last block is zero-padded
        int out = 5;
        Rng rng = new Rng(3);
        float[] w = new float[in * out];
        for (int i = 0; i < w.length; i++) {
            w[i] = rng.nextUniform(1f) * (i % 7 == 0 ? 3 : 1);
        }
        for (boolean zeroPoints : new boolean[] {false, true}) {
            for (int blockSize : new int[] {16, 32}) {
                QuantizedWeights.Int4Blocks q = QuantizedWeights.int4(new QuantizedWeights.Matrix(w, in, out, false),
                        blockSize, zeroPoints);
                int blocks = (in + blockSize - 1) / blockSize;
                assertEquals(blocks, q.blocks());
                assertEquals(out * blocks * blockSize / 2, q.packed().length);
                assertEquals(out * blocks, q.scales().length);
                int[] codes = new int[in * out];
                float[] expected = referenceInt4(w, in, out, blockSize, zeroPoints, codes);
                for (int n = 0; n < out; n++) {
                    for (int k = 0; k < blocks * blockSize; k++) {
                        int b = k / blockSize;
                        int packed = q.packed()[(n * blocks + b) * (blockSize / 2) + (k % blockSize) / 2] & 0xFF;
                        int code = k % 2 == 0 ? packed & 0xF : packed >>> 4;
                        int zero = zeroPoints
                                ? (q.zeroPoints()[n * ((blocks + 1) / 2) + b / 2] >>> (4 * (b % 2))) & 0xF
                                : 8;
                        float value = (code - zero) * q.scales()[n * blocks + b];
                        if (k < in) {
                            assertEquals(codes[n * in + k], code, "code of w(" + k + ", " + n + ")");
                            assertEquals(expected[n * in + k], value, 1e-6, "w(" + k + ", " + n + ")");
                            // Within half a step, or one step where the range's far end is clipped to 15.
                            assertTrue(Math.abs(value - w[n * in + k]) <= Math.abs(q.scales()[n * blocks + b]) + 1e-6);
                        } else {
                            assertEquals(0, value, 1e-6, "padding decodes to 0");
                        }
                    }
                }
            }
        }
    }

    @Test
    void int8IsSymmetricPerOutputChannelInEitherStoredLayout() {
        int in = 9;
        int out = 4;
        Rng rng = new Rng(5);
        float[] outMajor = new float[in * out];
        for (int i = 0; i < outMajor.length; i++) {
            outMajor[i] = rng.nextUniform(2f);
        }
        float[] inMajor = new float[in * out];
        for (int n = 0; n < out; n++) {
            for (int k = 0; k < in; k++) {
                inMajor[k * out + n] = outMajor[n * in + k];
            }
        }
        QuantizedWeights.Int8Columns a = QuantizedWeights.int8(new QuantizedWeights.Matrix(outMajor, in, out, false));
        QuantizedWeights.Int8Columns b = QuantizedWeights.int8(new QuantizedWeights.Matrix(inMajor, in, out, true));
        assertTrue(java.util.Arrays.equals(a.values(), b.values()));
        for (int n = 0; n < out; n++) {
            double max = 0;
            for (int k = 0; k < in; k++) {
                max = Math.max(max, Math.abs(outMajor[n * in + k]));
            }
            assertEquals(max / 127, a.scales()[n], 1e-7);
            for (int k = 0; k < in; k++) {
                assertEquals(Math.round(outMajor[n * in + k] / a.scales()[n]), a.values()[k * out + n]);
            }
        }
    }

    /**
     * Quantization is per output channel (int8) or per channel's blocks (int4), so matrices quantized apart and put
     * side by side are, byte for byte, the quantization of their joined columns.
     */
    @Test
    void sideBySideWeightsEqualTheQuantizedJoinedColumns() {
        int in = 40;
        int[] widths = {6, 3, 3};
        Rng rng = new Rng(7);
        List<float[]> parts = new java.util.ArrayList<>();
        float[] joined = new float[in * 12]; // [out, in]: the joined columns are the parts' rows one after another
        int at = 0;
        for (int width : widths) {
            float[] part = new float[in * width];
            for (int i = 0; i < part.length; i++) {
                part[i] = rng.nextUniform(1f) * (i % 5 == 0 ? 4 : 1);
            }
            parts.add(part);
            System.arraycopy(part, 0, joined, at, part.length);
            at += part.length;
        }
        QuantizedWeights.Int8Columns int8 = QuantizedWeights.int8SideBySide(java.util.stream.IntStream.range(0, widths.length)
                .mapToObj(i -> QuantizedWeights.int8(new QuantizedWeights.Matrix(parts.get(i), in, widths[i], false))).toList());
        QuantizedWeights.Int8Columns int8Joined = QuantizedWeights.int8(new QuantizedWeights.Matrix(joined, in, 12, false));
        assertTrue(java.util.Arrays.equals(int8Joined.values(), int8.values()));
        assertTrue(java.util.Arrays.equals(int8Joined.scales(), int8.scales()));
        for (boolean zeroPoints : new boolean[] {false, true}) {
            QuantizedWeights.Int4Blocks int4 = QuantizedWeights.int4SideBySide(java.util.stream.IntStream.range(0, widths.length)
                    .mapToObj(i -> QuantizedWeights.int4(new QuantizedWeights.Matrix(parts.get(i), in, widths[i], false), 16,
                            zeroPoints)).toList());
            QuantizedWeights.Int4Blocks int4Joined = QuantizedWeights.int4(new QuantizedWeights.Matrix(joined, in, 12, false), 16,
                    zeroPoints);
            assertEquals(int4Joined.blocks(), int4.blocks());
            assertTrue(java.util.Arrays.equals(int4Joined.packed(), int4.packed()));
            assertTrue(java.util.Arrays.equals(int4Joined.scales(), int4.scales()));
            assertTrue(java.util.Arrays.equals(int4Joined.zeroPoints(), int4.zeroPoints()));
        }
    }

    /**
     * A Llama block's q, k and v, and its gate and up, read the same input: quantized, each group is one MatMulNBits
     * or int8 MatMul over the side-by-side weights, split after (four quantized MatMuls a layer, not seven), and the
     * logits stay within the bounds, merged and with F32 LoRA branches per projection added after the split. Each
     * residual Add and the RMSNorm after it are one SkipSimplifiedLayerNormalization (in F32 graphs too, whose
     * logits {@code OnnxExportTest} holds to the Java forward for every family).
     */
    @ParameterizedTest(name = "{0} unmerged={1}")
    @MethodSource("sideBySideExports")
    void projectionsReadingTheSameInputShareOneQuantizedMatMul(Precision precision, boolean unmerged) throws Exception {
        var config = TestModels.LLAMA;
        Map<String, float[]> weights = TestModels.weights(config, 1);
        CausalLanguageModel model = TestModels.adapted(config, weights, 2);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, Options.defaults().withUnmerged(unmerged)
                .withQuantization(WeightQuantization.of(precision)), new Provenance(null, null, null), file);
        Message graph = ProtoReader.parse(Files.readAllBytes(file)).message(MODEL_GRAPH);
        Map<String, List<Long>> dims = new HashMap<>();
        graph.messages(GRAPH_INITIALIZER).forEach(tensor -> dims.put(tensor.string(TENSOR_NAME), tensor.varints(TENSOR_DIMS)));
        Map<String, Integer> ops = new HashMap<>();
        graph.messages(GRAPH_NODE).forEach(node -> ops.merge(node.string(NODE_OP_TYPE), 1, Integer::sum));
        String quantizedOp = precision == Precision.INT4 ? "MatMulNBits" : "MatMulInteger";
        assertEquals(4 * config.numLayers(), ops.get(quantizedOp), quantizedOp + " nodes");
        assertEquals(2 * config.numLayers(), ops.get("Split"), "Split nodes");
        // Every residual Add is fused with the RMSNorm of its sum (the next block's, or the final norm).
        assertEquals(2 * config.numLayers(), ops.get("SkipSimplifiedLayerNormalization"), "SkipSimplifiedLayerNormalization nodes");
        long qkv = (long) (config.numHeads() + 2 * config.numKeyValueHeads()) * config.headDim();
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            List<Long> attention = dims.get(prefix + "self_attn.q_proj+k_proj+v_proj.weight." + precision.label());
            List<Long> mlp = dims.get(prefix + "mlp.gate_proj+up_proj.weight." + precision.label());
            if (precision == Precision.INT4) {
                assertEquals(List.of(qkv, 1L, 16L), attention);
                assertEquals(List.of(2L * config.intermediateSize(), 1L, 16L), mlp);
            } else {
                assertEquals(List.of((long) config.hiddenSize(), qkv), attention);
                assertEquals(List.of((long) config.hiddenSize(), 2L * config.intermediateSize()), mlp);
            }
        }
        if (!unmerged) {
            model.merge();
        }
        Map<String, FloatTensor> feeds = unmerged ? LoraInputs.of(model.toPeftAdapter()) : Map.of();
        OnnxVerifier.QuantizedResult check = OnnxVerifier.verifyQuantized(file, model, List.of(), 0, feeds,
                QuantizedBounds.defaults(precision), 1);
        assertTrue(check.passed(), check.summary());
    }

    static Stream<Arguments> sideBySideExports() {
        return Stream.of(Precision.INT8, Precision.INT4).flatMap(precision -> Stream.of(
                Arguments.of(precision, false), Arguments.of(precision, true)));
    }

    /**
     * With accuracy_level 0 (float32 compute) MatMulNBits computes with exactly the dequantized weights: the
     * graph equals the Java F32 forward of a model whose linear weights are dequantized from the same blocks,
     * which holds the packed layout, the scales and the zero points to what ONNX Runtime reads.
     */
    @ParameterizedTest(name = "{0} zero points {1}")
    @MethodSource("layouts")
    void int4GraphsComputeWithTheDequantizedBlocks(String arch, boolean zeroPoints, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 1);
        WeightQuantization int4 = new WeightQuantization(Precision.INT4, 16, zeroPoints, 0, false);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(TestModels.base(config, weights), weights, Options.defaults().withQuantization(int4),
                new Provenance(null, null, null), file);
        Map<String, float[]> dequantized = new HashMap<>(weights);
        for (LinearModule module : ModelLayout.of(config).linearModules()) {
            if (module.outputLayer()) {
                continue;
            }
            String name = module.path() + ".weight";
            float[] w = weights.get(name);
            QuantizedWeights.Int4Blocks q = QuantizedWeights.int4(
                    new QuantizedWeights.Matrix(w, module.in(), module.out(), module.fanInFanOut()), 16, zeroPoints);
            float[] values = new float[w.length];
            for (int n = 0; n < module.out(); n++) {
                for (int k = 0; k < module.in(); k++) {
                    int b = k / 16;
                    int packed = q.packed()[(n * q.blocks() + b) * 8 + (k % 16) / 2] & 0xFF;
                    int code = k % 2 == 0 ? packed & 0xF : packed >>> 4;
                    int zero = zeroPoints ? (q.zeroPoints()[n * ((q.blocks() + 1) / 2) + b / 2] >>> (4 * (b % 2))) & 0xF : 8;
                    values[module.fanInFanOut() ? k * module.out() + n : n * module.in() + k] =
                            (code - zero) * q.scales()[n * q.blocks() + b];
                }
            }
            dequantized.put(name, values);
        }
        OnnxVerifier.Result check = OnnxVerifier.verify(file, TestModels.base(config, dequantized),
                OnnxVerifier.Probe.standard(), Map.of(), 1e-4, 1);
        assertTrue(check.passed(), check.summary());
    }

    static Stream<Arguments> layouts() {
        return Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED).flatMap(config -> Stream.of(
                Arguments.of(config.modelType(), false, config), Arguments.of(config.modelType(), true, config)));
    }

    static Stream<Arguments> exports() {
        WeightQuantization int8 = WeightQuantization.of(Precision.INT8);
        WeightQuantization int4 = WeightQuantization.of(Precision.INT4);
        List<WeightQuantization> variants = List.of(int8, int8.withEmbeddingsInt8(true), int4,
                int4.withBlockSize(16).withZeroPoints(true), int4.withEmbeddingsInt8(true));
        return Stream.concat(Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED), TestModels.FAMILIES.stream())
                .flatMap(config -> variants.stream().flatMap(q -> Stream.of(
                        Arguments.of(config.modelType(), config, q, false), Arguments.of(config.modelType(), config, q, true))));
    }

    @ParameterizedTest(name = "{0} {2} unmerged={3}")
    @MethodSource("exports")
    void aQuantizedGraphIsWellFormedRunsUnderOnnxRuntimeAndStaysNearTheF32Forward(String arch, ModelConfig config,
                                                                                 WeightQuantization quantization,
                                                                                 boolean unmerged) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 1);
        CausalLanguageModel model = TestModels.adapted(config, weights, 2);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.Result export = OnnxExporter.export(model, weights,
                Options.defaults().withUnmerged(unmerged).withQuantization(quantization), new Provenance(null, null, null), file);
        assertEquals(quantization.describe(), export.metadata().get(OnnxExporter.QUANTIZATION));
        boolean headAdapted = model.adaptedModules().keySet().stream().anyMatch(path -> path.endsWith("lm_head"));
        checkStructure(file, quantization, config.tieWordEmbeddings() && (unmerged || !headAdapted));

        if (!unmerged) {
            model.merge();
        }
        Map<String, FloatTensor> feeds = unmerged ? LoraInputs.of(model.toPeftAdapter()) : Map.of();
        OnnxVerifier.QuantizedResult check = OnnxVerifier.verifyQuantized(file, model, List.of(), 0, feeds,
                QuantizedBounds.defaults(quantization.precision()), 1);
        assertTrue(check.passed(), check.summary());
        assertTrue(check.probe().maxAbsError() > 0, "a quantized graph that equals F32 exactly quantized nothing");
    }

    /**
     * What onnx.checker checks of the parts the quantized export adds: every node reads values defined
     * before it, initializers hold as many bytes as their type and shape say, the contrib domain is imported
     * where used, and MatMulNBits' attributes agree with its initializers.
     */
    private static void checkStructure(Path file, WeightQuantization quantization, boolean headReadsEmbedding)
            throws Exception {
        Message model = ProtoReader.parse(Files.readAllBytes(file));
        Message graph = model.message(MODEL_GRAPH);
        Map<String, Message> initializers = new HashMap<>();
        Set<String> defined = new HashSet<>();
        for (Message tensor : graph.messages(GRAPH_INITIALIZER)) {
            String name = tensor.string(TENSOR_NAME);
            initializers.put(name, tensor);
            defined.add(name);
            long elements = tensor.varints(TENSOR_DIMS).stream().mapToLong(Long::longValue).reduce(1, Math::multiplyExact);
            long bytesPerElement = switch ((int) tensor.varint(TENSOR_DATA_TYPE)) {
                case OnnxGraph.FLOAT -> 4;
                case OnnxGraph.INT64 -> 8;
                case OnnxGraph.INT8, OnnxGraph.UINT8, OnnxGraph.BOOL -> 1;
                default -> throw new AssertionError(name + ": unexpected data type");
            };
            assertEquals(elements * bytesPerElement, tensor.all(TENSOR_RAW_DATA).getFirst().length(), name);
        }
        graph.messages(GRAPH_INPUT).forEach(input -> defined.add(input.string(VALUE_INFO_NAME)));
        Set<String> domains = new HashSet<>();
        model.messages(MODEL_OPSET_IMPORT).forEach(opset -> domains.add(opset.string(1) == null ? "" : opset.string(1)));
        int matMulNBits = 0;
        int matMulInteger = 0;
        for (Message node : graph.messages(GRAPH_NODE)) {
            String op = node.string(NODE_OP_TYPE);
            for (String input : node.strings(NODE_INPUT)) {
                assertTrue(input.isEmpty() || defined.contains(input), op + " reads '" + input + "' before it is defined");
            }
            defined.addAll(node.strings(NODE_OUTPUT));
            String domain = node.string(NODE_DOMAIN) == null ? "" : node.string(NODE_DOMAIN);
            assertTrue(domains.contains(domain), op + "'s domain '" + domain + "' is not imported");
            assertFalse(op.equals("MatMul") && node.strings(NODE_INPUT).stream().anyMatch(
                    input -> input.endsWith(".weight") && !input.startsWith("lora.")), "a float32 linear MatMul is left");
            if (op.equals("MatMulNBits")) {
                matMulNBits++;
                assertEquals(OnnxGraph.MICROSOFT_DOMAIN, domain);
                Map<String, Long> attributes = new HashMap<>();
                node.messages(NODE_ATTRIBUTE).forEach(a -> attributes.put(a.string(ATTRIBUTE_NAME), a.varint(ATTRIBUTE_INT)));
                assertEquals(4L, attributes.get("bits"));
                assertEquals((long) quantization.blockSize(), attributes.get("block_size"));
                assertEquals((long) quantization.accuracyLevel(), attributes.get("accuracy_level"));
                long k = attributes.get("K");
                long n = attributes.get("N");
                long blocks = (k + quantization.blockSize() - 1) / quantization.blockSize();
                List<String> inputs = node.strings(NODE_INPUT);
                assertEquals(List.of(n, blocks, (long) quantization.blockSize() / 2),
                        initializers.get(inputs.get(1)).varints(TENSOR_DIMS));
                assertEquals(List.of(n * blocks), initializers.get(inputs.get(2)).varints(TENSOR_DIMS));
                assertEquals(quantization.zeroPoints() ? 4 : 3, inputs.size());
                if (quantization.zeroPoints()) {
                    assertEquals(List.of(n * ((blocks + 1) / 2)), initializers.get(inputs.get(3)).varints(TENSOR_DIMS));
                }
            }
            if (op.equals("MatMulInteger")) {
                matMulInteger++;
            }
        }
        if (quantization.precision() == Precision.INT4) {
            assertTrue(matMulNBits > 0, "no MatMulNBits");
            // With int8 embeddings the head is int4 too, unless it reads the tied embedding's int8 table.
            assertEquals(quantization.embeddingsInt8() && headReadsEmbedding ? 1 : 0, matMulInteger,
                    "int8 MatMuls of an int4 export: a tied head");
        } else {
            assertTrue(matMulInteger > 0, "no MatMulInteger");
            assertEquals(0, matMulNBits);
        }
    }

    @Test
    void externalDataHoldsTheQuantizedWeightsAndRuns() throws Exception {
        ModelConfig config = TestModels.LLAMA;
        Map<String, float[]> weights = TestModels.weights(config, 1);
        CausalLanguageModel model = TestModels.base(config, weights);
        Path file = dir.resolve("external/model.onnx");
        OnnxExporter.Result export = OnnxExporter.export(model, weights, Options.defaults()
                .withExternalData(ExternalData.ALWAYS).withQuantization(WeightQuantization.of(Precision.INT4)),
                new Provenance(null, null, null), file);
        assertNotNull(export.externalData());
        assertTrue(Files.size(export.externalData()) > 0);
        Path moved = dir.resolve("moved");
        Files.createDirectories(moved);
        Files.move(file, moved.resolve("model.onnx"));
        Files.move(export.externalData(), moved.resolve(export.externalData().getFileName()));
        OnnxVerifier.QuantizedResult check = OnnxVerifier.verifyQuantized(moved.resolve("model.onnx"), model, List.of(), 0,
                Map.of(), QuantizedBounds.defaults(Precision.INT4), 1);
        assertTrue(check.passed(), check.summary());
        try (OrtSession session = OnnxRuntimeNatives.environment().createSession(moved.resolve("model.onnx").toString())) {
            assertEquals("int4 block 32 symmetric accuracy_level 4, embeddings f32",
                    session.getMetadata().getCustomMetadata().get(OnnxExporter.QUANTIZATION));
        }
    }
}
