package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtSession;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.model.WeightSpec;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.onnx.OnnxExporter.ExternalData;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import dev.loraflow.onnx.ProtoReader.Message;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The written file re-read field by field: interface, metadata, initializers, external data, corruption. */
class OnnxFileTest {

    // onnx.proto field numbers, as the reader sees them.
    private static final int MODEL_IR_VERSION = 1;
    private static final int MODEL_GRAPH = 7;
    private static final int MODEL_OPSET_IMPORT = 8;
    private static final int MODEL_METADATA = 14;
    private static final int GRAPH_NODE = 1;
    private static final int GRAPH_INITIALIZER = 5;
    private static final int GRAPH_INPUT = 11;
    private static final int GRAPH_OUTPUT = 12;
    private static final int TENSOR_DIMS = 1;
    private static final int TENSOR_NAME = 8;
    private static final int TENSOR_RAW_DATA = 9;
    private static final int TENSOR_EXTERNAL_DATA = 13;
    private static final int TENSOR_DATA_LOCATION = 14;

    private static final Provenance PROVENANCE = new Provenance("b".repeat(64), "ckpt-7", "a".repeat(64));

    @TempDir
    Path dir;

    static Stream<Arguments> architectures() {
        return Stream.of(TestModels.GPT2, TestModels.LLAMA, TestModels.LLAMA_TIED)
                .map(config -> Arguments.of(config.modelType() + (config.tieWordEmbeddings() ? " tied" : ""), config));
    }

    private static Message read(Path file) throws Exception {
        return ProtoReader.parse(Files.readAllBytes(file));
    }

    private static List<String> names(List<Message> valueInfos) {
        return valueInfos.stream().map(info -> info.string(1)).toList();
    }

    /** Each dimension of a ValueInfoProto: its dim_param, or its dim_value as text. */
    private static List<String> dims(Message valueInfo) {
        Message shape = valueInfo.message(2).message(1).message(2);
        return shape.messages(1).stream()
                .map(dim -> dim.string(2) != null ? dim.string(2) : Long.toString(dim.varint(1))).toList();
    }

    private static int kvHeads(ModelConfig config) {
        return OnnxVerifier.kvHeads(config);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void theGraphHasOptimumsInterfaceAndEveryCheckpointTensor(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 1);
        CausalLanguageModel model = TestModels.adapted(config, weights, 2);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, Options.defaults(), PROVENANCE, file);

        Message onnx = read(file);
        assertEquals(8, onnx.varint(MODEL_IR_VERSION));
        assertEquals(17L, opsets(onnx).get(""));
        // Attention as ONNX Runtime's com.microsoft.GroupQueryAttention (and RoPE as its RotaryEmbedding), every family.
        assertEquals(1L, opsets(onnx).get(OnnxGraph.MICROSOFT_DOMAIN));
        Message graph = onnx.message(MODEL_GRAPH);

        List<String> inputs = new ArrayList<>(List.of("input_ids", "attention_mask", "position_ids"));
        List<String> outputs = new ArrayList<>(List.of("logits"));
        for (int layer = 0; layer < config.numLayers(); layer++) {
            inputs.addAll(List.of("past_key_values." + layer + ".key", "past_key_values." + layer + ".value"));
            outputs.addAll(List.of("present." + layer + ".key", "present." + layer + ".value"));
        }
        assertEquals(inputs, names(graph.messages(GRAPH_INPUT)));
        assertEquals(outputs, names(graph.messages(GRAPH_OUTPUT)));
        String kv = Integer.toString(kvHeads(config));
        String headDim = Integer.toString(config.headDim());
        List<Message> inputInfos = graph.messages(GRAPH_INPUT);
        assertEquals(List.of("batch_size", "sequence_length"), dims(inputInfos.get(0)));
        assertEquals(List.of("batch_size", "total_sequence_length"), dims(inputInfos.get(1)));
        assertEquals(List.of("batch_size", kv, "past_sequence_length", headDim), dims(inputInfos.get(3)));
        List<Message> outputInfos = graph.messages(GRAPH_OUTPUT);
        assertEquals(List.of("batch_size", "sequence_length", Integer.toString(config.vocabSize())), dims(outputInfos.get(0)));
        assertEquals(List.of("batch_size", kv, "present_sequence_length", headDim), dims(outputInfos.get(1)));

        // One place names the weights: every tensor of the checkpoint layout is an initializer of that name.
        Set<String> initializers = new HashSet<>();
        for (Message tensor : graph.messages(GRAPH_INITIALIZER)) {
            assertTrue(initializers.add(tensor.string(TENSOR_NAME)), "initializer named twice: " + tensor.string(TENSOR_NAME));
        }
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            assertTrue(initializers.contains(spec.name()), "no initializer " + spec.name());
        }

        // Nodes in topological order: each reads only inputs, initializers and earlier nodes' outputs.
        Set<String> defined = new HashSet<>(inputs);
        defined.addAll(initializers);
        for (Message node : graph.messages(GRAPH_NODE)) {
            for (String input : node.strings(1)) {
                assertTrue(defined.contains(input), node.string(4) + " reads undefined " + input);
            }
            // "" is an omitted optional output (SkipSimplifiedLayerNormalization's mean and inv_std_var), not a value.
            node.strings(2).stream().filter(output -> !output.isEmpty())
                    .forEach(output -> assertTrue(defined.add(output), "value defined twice: " + output));
        }
        assertTrue(defined.containsAll(outputs));
    }

    @Test
    void theMetadataNamesTheModelTheAdapterAndTheBuild() throws Exception {
        ModelConfig config = TestModels.LLAMA;
        Map<String, float[]> weights = TestModels.weights(config, 3);
        CausalLanguageModel model = TestModels.adapted(config, weights, 4);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.Result export = OnnxExporter.export(model, weights, Options.defaults(), PROVENANCE, file);

        Map<String, String> expected = Map.of(
                "architecture", "LlamaForCausalLM",
                "model_type", "llama",
                "base_model_sha256", PROVENANCE.baseModelSha256(),
                "adapter_checkpoint_id", "ckpt-7",
                "adapter_sha256", PROVENANCE.adapterSha256(),
                "lora_config", model.loraConfig().toJson(),
                "lora_merged", "true",
                "kv_cache", GraphNames.KV_CACHE_RIGHT_PADDED,
                "loraflow_version", "0.1.0-SNAPSHOT");
        assertEquals(expected, export.metadata());
        try (OrtSession session = OnnxRuntimeNatives.environment().createSession(file.toString())) {
            assertEquals(expected, session.getMetadata().getCustomMetadata());
            assertEquals("loraflow", session.getMetadata().getProducerName());
        }

        CausalLanguageModel base = TestModels.base(config, weights);
        Map<String, String> baseMetadata = OnnxExporter.export(base, weights, Options.defaults(),
                new Provenance("c".repeat(64), null, null), file).metadata();
        assertEquals(Set.of("architecture", "model_type", "base_model_sha256", "kv_cache", "loraflow_version"),
                baseMetadata.keySet());
    }

    @Test
    void exportingAModelDirectoryHashesTheCheckpointAndNamesTheAdapterByItsDirectory() throws Exception {
        Gpt2Config config = TestModels.GPT2;
        Path modelDirectory = dir.resolve("base");
        RandomModel.write(config, 5, modelDirectory);
        Map<String, float[]> weights = RandomModel.initialWeights(config, 5);
        CausalLanguageModel adapted = TestModels.adapted(config, weights, 6);
        Path adapterDirectory = dir.resolve("run-42").resolve("checkpoint-300");
        adapted.toPeftAdapter().write(adapterDirectory, DType.F32);

        Path file = dir.resolve("out").resolve("model.onnx");
        OnnxExporter.Result export = OnnxExporter.exportDirectory(modelDirectory, adapterDirectory, Options.defaults(), file);

        assertEquals(Sha256.of(modelDirectory.resolve("model.safetensors")), export.metadata().get("base_model_sha256"));
        assertEquals("checkpoint-300", export.metadata().get("adapter_checkpoint_id"));
        assertEquals(Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)), export.metadata().get("adapter_sha256"));
        OnnxVerifier.Result result = OnnxVerifier.verify(file, adapted);
        assertTrue(result.passed(), result.summary());
    }

    @ParameterizedTest(name = "opset {0}")
    @ValueSource(ints = {17, 18, 19, 20, 21})
    void everySupportedOpsetRunsAndDeclaresItsIrVersion(int opset) throws Exception {
        ModelConfig config = TestModels.LLAMA;
        Map<String, float[]> weights = TestModels.weights(config, 7);
        CausalLanguageModel model = TestModels.adapted(config, weights, 8);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, Options.defaults().withOpset(opset), PROVENANCE, file);
        Message onnx = read(file);
        assertEquals((long) opset, opsets(onnx).get(""));
        assertEquals(opset <= 18 ? 8 : opset <= 20 ? 9 : 10, onnx.varint(MODEL_IR_VERSION));
        OnnxVerifier.Result result = OnnxVerifier.verify(file, model);
        assertTrue(result.passed(), result.summary());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void externalDataHoldsTheWeightsPageAlignedAndTravelsWithTheModel(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 9);
        CausalLanguageModel model = TestModels.adapted(config, weights, 10);
        Path file = dir.resolve("first").resolve("model.onnx");
        OnnxExporter.Result export = OnnxExporter.export(model, weights,
                Options.defaults().withExternalData(ExternalData.ALWAYS), PROVENANCE, file);
        assertEquals(file.resolveSibling("model.onnx_data"), export.externalData());

        long dataSize = Files.size(export.externalData());
        int externalTensors = 0;
        for (Message tensor : read(file).message(MODEL_GRAPH).messages(GRAPH_INITIALIZER)) {
            List<Message> entries = tensor.messages(TENSOR_EXTERNAL_DATA);
            if (entries.isEmpty()) {
                assertTrue(tensor.all(TENSOR_RAW_DATA).getFirst().length() < OnnxExporter.EXTERNAL_TENSOR_MIN_BYTES);
                continue;
            }
            externalTensors++;
            assertEquals(1, tensor.varint(TENSOR_DATA_LOCATION));
            assertTrue(tensor.all(TENSOR_RAW_DATA).isEmpty());
            Map<String, String> location = new java.util.HashMap<>();
            entries.forEach(entry -> location.put(entry.string(1), entry.string(2)));
            assertEquals("model.onnx_data", location.get("location"));
            long offset = Long.parseLong(location.get("offset"));
            long length = Long.parseLong(location.get("length"));
            assertEquals(0, offset % 4096, tensor.string(TENSOR_NAME));
            long elements = tensor.varints(TENSOR_DIMS).stream().reduce(1L, Math::multiplyExact);
            assertEquals(4 * elements, length);
            assertTrue(offset + length <= dataSize);
        }
        assertTrue(externalTensors > 5, "the weights went to the data file");

        // The location is relative: both files moved elsewhere still load.
        Path moved = Files.createDirectories(dir.resolve("second"));
        Files.move(file, moved.resolve("model.onnx"));
        Files.move(export.externalData(), moved.resolve("model.onnx_data"));
        OnnxVerifier.Result result = OnnxVerifier.verify(moved.resolve("model.onnx"), model);
        assertTrue(result.passed(), result.summary());
    }

    @Test
    void smallModelsKeepTheirWeightsInside() throws Exception {
        ModelConfig config = TestModels.GPT2;
        Map<String, float[]> weights = TestModels.weights(config, 11);
        OnnxExporter.Result export = OnnxExporter.export(TestModels.base(config, weights), weights, Options.defaults(),
                PROVENANCE, dir.resolve("model.onnx"));
        assertNull(export.externalData());
        assertFalse(Files.exists(dir.resolve("model.onnx_data")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void aCorruptedWeightFailsVerificationWithTheMeasuredError(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TestModels.weights(config, 12);
        CausalLanguageModel model = TestModels.adapted(config, weights, 13);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.export(model, weights, Options.defaults(), PROVENANCE, file);
        assertTrue(OnnxVerifier.verify(file, model).passed());

        // One value of the last layer's first norm, in the bytes of the written file.
        String corrupted = config instanceof DecoderConfig
                ? "model.layers." + (config.numLayers() - 1) + ".input_layernorm.weight"
                : "h." + (config.numLayers() - 1) + ".ln_1.weight";
        byte[] bytes = Files.readAllBytes(file);
        ProtoReader.Field raw = read(file).message(MODEL_GRAPH).messages(GRAPH_INITIALIZER).stream()
                .filter(tensor -> corrupted.equals(tensor.string(TENSOR_NAME)))
                .findFirst().orElseThrow().all(TENSOR_RAW_DATA).getFirst();
        ByteBuffer values = ByteBuffer.wrap(bytes, raw.offset(), raw.length()).order(ByteOrder.LITTLE_ENDIAN);
        values.putFloat(raw.offset() + 4, values.getFloat(raw.offset() + 4) + 0.5f);
        Files.write(file, bytes);

        OnnxVerifier.Result result = OnnxVerifier.verify(file, model);
        assertFalse(result.passed());
        assertNull(result.error());
        assertTrue(result.maxAbsError() > OnnxVerifier.DEFAULT_TOLERANCE, result.summary());
        assertTrue(result.summary().startsWith("FAILED: max |Δlogit| "), result.summary());
    }

    @Test
    void aFileOnnxRuntimeCannotLoadIsAFailedVerificationNotAnException() throws Exception {
        Path file = dir.resolve("truncated.onnx");
        ModelConfig config = TestModels.GPT2;
        Map<String, float[]> weights = TestModels.weights(config, 14);
        CausalLanguageModel model = TestModels.base(config, weights);
        OnnxExporter.export(model, weights, Options.defaults(), PROVENANCE, file);
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length / 2));

        OnnxVerifier.Result result = OnnxVerifier.verify(file, model);
        assertFalse(result.passed());
        assertNotNull(result.error());
        assertTrue(Double.isNaN(result.maxAbsError()));
    }

    @Test
    void rejectsWhatItCannotExport() throws Exception {
        ModelConfig config = TestModels.GPT2;
        Map<String, float[]> weights = TestModels.weights(config, 15);
        Path file = dir.resolve("model.onnx");
        IllegalArgumentException opset = assertThrows(IllegalArgumentException.class, () -> Options.defaults().withOpset(16));
        assertTrue(opset.getMessage().contains("opset 16"), opset.getMessage());

        IllegalArgumentException noAdapter = assertThrows(IllegalArgumentException.class, () -> OnnxExporter.export(
                TestModels.base(config, weights), weights, Options.defaults().withUnmerged(true), PROVENANCE, file));
        assertTrue(noAdapter.getMessage().contains("un-merged"), noAdapter.getMessage());

        CausalLanguageModel merged = TestModels.adapted(config, weights, 16);
        merged.merge();
        IllegalArgumentException alreadyMerged = assertThrows(IllegalArgumentException.class,
                () -> OnnxExporter.export(merged, weights, Options.defaults(), PROVENANCE, file));
        assertTrue(alreadyMerged.getMessage().contains("merged"), alreadyMerged.getMessage());
        assertFalse(Files.exists(file));
    }

    @Test
    void unmergedGraphsDeclareTheAdapterInputsWithAFreeRank() throws Exception {
        ModelConfig config = TestModels.GPT2;
        Map<String, float[]> weights = TestModels.weights(config, 17);
        CausalLanguageModel model = TestModels.adapted(config, weights, 18);
        Path file = dir.resolve("model.onnx");
        OnnxExporter.Result export = OnnxExporter.export(model, weights, Options.defaults().withUnmerged(true), PROVENANCE, file);

        List<String> expected = new ArrayList<>();
        IntStream.range(0, config.numLayers()).forEach(layer -> Stream.of("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
                .forEach(module -> Stream.of(".A", ".B", ".scaling").forEach(suffix ->
                        expected.add("lora.transformer.h." + layer + "." + module + suffix))));
        assertEquals(expected, export.loraInputs());
        assertEquals("false", export.metadata().get("lora_merged"));
        List<Message> inputs = read(file).message(MODEL_GRAPH).messages(GRAPH_INPUT);
        Message a = inputs.stream().filter(input -> input.string(1).equals("lora.transformer.h.0.attn.c_attn.A")).findFirst().orElseThrow();
        Message b = inputs.stream().filter(input -> input.string(1).equals("lora.transformer.h.0.attn.c_attn.B")).findFirst().orElseThrow();
        int hidden = config.hiddenSize();
        assertEquals(List.of("lora_slots", "transformer.h.0.attn.c_attn.r", Integer.toString(hidden)), dims(a));
        assertEquals(List.of("lora_slots", Integer.toString(3 * hidden), "transformer.h.0.attn.c_attn.r"), dims(b));
        Message scaling = inputs.stream().filter(input -> input.string(1).equals("lora.transformer.h.0.attn.c_attn.scaling"))
                .findFirst().orElseThrow();
        assertEquals(List.of("lora_slots", "1", "1"), dims(scaling));
        Message slot = inputs.stream().filter(input -> input.string(1).equals("lora.slot")).findFirst().orElseThrow();
        assertEquals(List.of("lora_rows"), dims(slot));
    }

    /** The model's opset imports, version by domain ("" for the ONNX domain). */
    private static Map<String, Long> opsets(Message onnx) {
        Map<String, Long> versions = new HashMap<>();
        onnx.messages(MODEL_OPSET_IMPORT).forEach(opset ->
                versions.put(opset.string(1) == null ? "" : opset.string(1), opset.varint(2)));
        return versions;
    }
}
