package dev.loraflow.onnx;

import dev.loraflow.core.kernels.AttentionSpec;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.RopeTable;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.LinearModule;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.onnx.OnnxGraph.Attribute;
import dev.loraflow.onnx.OnnxGraph.Dim;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * What the GPT-2 and Llama graphs share: the Optimum-style inputs and outputs, the attention mask, the
 * KV-cached attention, the norms and activations, and linear modules with their weights in the layout
 * MatMul reads ([in, out]) and, in an un-merged export, their LoRA branch fed from graph inputs.
 *
 * <p>The interface is the package's (see package-info). LoRA inputs are required inputs, not
 * initializers a caller may override, because ONNX Runtime's Java API refuses to feed an initializer.
 *
 * <p>With a {@link WeightQuantization}, the linear modules' MatMuls become int8 or int4 ones, and
 * optionally the token embedding's Gather and the output head int8 (see {@link #embed}, {@link #outputHead}).
 *
 * <p>Query i of a row (absolute index past + i, past = the row's mask sum − sequence_length) attends to its
 * keys j ≤ past + i; a padding position's output (after the row's tokens) is unused, and may be anything.
 */
final class DecoderGraph {

    static final String LORA_PREFIX = "lora.";
    /** An un-merged graph's slot of each row's adapter in the stacked LoRA inputs: float [lora_rows], whole numbers. */
    static final String LORA_SLOT = LORA_PREFIX + "slot";

    private static final Dim BATCH = Dim.of("batch_size");
    private static final Dim SEQUENCE = Dim.of("sequence_length");
    /** The cache's slots per row: the tokens cached so far, or a preallocated buffer's capacity (right-padded rows). */
    private static final Dim PAST = Dim.of("past_sequence_length");
    /** The longest row's tokens after this call: the attention mask's width. */
    private static final Dim TOTAL = Dim.of("total_sequence_length");
    /** max(past_sequence_length, total_sequence_length): the present is the past's buffer when that holds the new tokens. */
    private static final Dim PRESENT = Dim.of("present_sequence_length");
    /** The slot input's rows: 1 for every row alike, or batch_size for one adapter per row. */
    private static final Dim LORA_ROWS = Dim.of("lora_rows");
    /** Adapters stacked in the LoRA inputs, each row gathering its own. */
    private static final Dim LORA_SLOTS = Dim.of("lora_slots");

    final OnnxGraph graph;
    private final ModelConfig config;
    private final int opset;
    private final int kvHeads;
    private final boolean unmerged;
    private final WeightQuantization quantization;
    private final Map<String, LoRALinear> adapted;
    private final Map<String, float[]> weights;
    private final Map<String, FrozenMatrix> frozen;
    private final ModelLayout layout;
    private final Map<String, LinearModule> linearModules = new HashMap<>();
    private final Map<Float, String> floatConstants = new HashMap<>();
    /** Token embeddings by canonical name: float32 initializers, or int8 ones with their scales when quantized. */
    private final Map<String, String> floatEmbeddings = new HashMap<>();
    private final Map<String, Int8Weight> int8Embeddings = new HashMap<>();
    /** int32 [batch]: each row's tokens after this call, less one (GroupQueryAttention's seqlens_k). */
    private final String seqlensK;
    /** int32 scalar: the attention mask's width (GroupQueryAttention's total_sequence_length). */
    private final String totalSequenceLength;
    /** [batch, seq]: the shape of input_ids, from which the logits' shape is built. */
    private final String inputShape;
    private final List<String> loraInputs = new ArrayList<>();
    /** Each row's slot as int64 [lora_rows], declared with the first adapted module. */
    private String loraSlot;

    /** An int8 weight [in, out] and its per-output-channel scales [out], as initializer names. */
    private record Int8Weight(String values, String scales) {}

    /** Rotary cos and sin tables, [max_positions, head_dim/2] each, read at each query's position_ids. */
    record Rotary(String cos, String sin) {}

    /**
     * Declares the inputs and outputs.
     *
     * @param weights  the base weights by canonical name, for tensors the model's adapted modules do not hold
     * @param frozen   the base weights held as frozen matrices (BF16/F16 mapped), widened as they are written
     * @param unmerged whether the adapters become graph inputs; otherwise each adapted module's weight is
     *                 written with its adapter merged, one module at a time (the model itself stays unmerged)
     */
    DecoderGraph(CausalLanguageModel model, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen, int opset,
                 int kvHeads, boolean unmerged, WeightQuantization quantization) {
        this.config = model.config();
        this.layout = model.layout();
        this.opset = opset;
        this.kvHeads = kvHeads;
        this.unmerged = unmerged;
        this.quantization = quantization;
        this.adapted = model.adaptedModules();
        this.weights = weights;
        this.frozen = frozen;
        layout.linearModules().forEach(module -> linearModules.put(module.path(), module));
        this.graph = new OnnxGraph(config.modelType());

        graph.input(GraphNames.INPUT_IDS, OnnxGraph.INT64, BATCH, SEQUENCE);
        graph.input(GraphNames.ATTENTION_MASK, OnnxGraph.INT64, BATCH, TOTAL);
        graph.input(GraphNames.POSITION_IDS, OnnxGraph.INT64, BATCH, SEQUENCE);
        Dim headDim = Dim.of(config.headDim());
        Dim kv = Dim.of(kvHeads);
        for (int layer = 0; layer < config.numLayers(); layer++) {
            graph.input(GraphNames.pastKey(layer), OnnxGraph.FLOAT, BATCH, kv, PAST, headDim);
            graph.input(GraphNames.pastValue(layer), OnnxGraph.FLOAT, BATCH, kv, PAST, headDim);
        }
        graph.output(GraphNames.LOGITS, OnnxGraph.FLOAT, BATCH, SEQUENCE, Dim.of(config.vocabSize()));
        for (int layer = 0; layer < config.numLayers(); layer++) {
            graph.output(GraphNames.presentKey(layer), OnnxGraph.FLOAT, BATCH, kv, PRESENT, headDim);
            graph.output(GraphNames.presentValue(layer), OnnxGraph.FLOAT, BATCH, kv, PRESENT, headDim);
        }
        if (config.headDim() % 8 != 0) {
            throw new IllegalArgumentException("head_dim " + config.headDim() + " is not a multiple of 8, which ONNX"
                    + " Runtime's GroupQueryAttention needs");
        }

        this.inputShape = graph.node("Shape", GraphNames.INPUT_IDS);
        Attribute toInt32 = Attribute.of("to", OnnxGraph.INT32);
        String tokens = graph.node("ReduceSum", List.of(GraphNames.ATTENTION_MASK, graph.ints(1)), Attribute.of("keepdims", 0));
        this.seqlensK = graph.node("Cast", graph.node("Sub", tokens, graph.scalar(1L)), toInt32);
        this.totalSequenceLength = graph.node("Cast", graph.node("Gather",
                graph.node("Shape", GraphNames.ATTENTION_MASK), graph.scalar(1L), Attribute.of("axis", 0)), toInt32);
    }

    static String loraA(String peftModulePath) {
        return LORA_PREFIX + peftModulePath + ".A";
    }

    static String loraB(String peftModulePath) {
        return LORA_PREFIX + peftModulePath + ".B";
    }

    static String loraScaling(String peftModulePath) {
        return LORA_PREFIX + peftModulePath + ".scaling";
    }

    /** The LoRA input names, A, B and scaling per adapted module, in module order. */
    List<String> loraInputs() {
        return List.copyOf(loraInputs);
    }

    /** c·tanh(x/c) in float32, the order Transformers computes Gemma 2's caps in. */
    private String softcap(String x, float cap) {
        return graph.node("Mul", graph.node("Tanh", graph.node("Div", x, constant(cap))), constant(cap));
    }

    /** A float initializer from the base weights, as stored. */
    String weight(String canonicalName) {
        return graph.weight(canonicalName, basePayload(canonicalName, false), layout.weight(canonicalName).shape());
    }

    /** A base tensor's bytes, as stored or (a matrix) transposed: from its float32 array, or widened from its frozen matrix. */
    private TensorPayload basePayload(String canonicalName, boolean transposed) {
        float[] values = weights.get(canonicalName);
        if (values != null) {
            long[] shape = layout.weight(canonicalName).shape();
            return transposed ? new TensorPayload.Transposed(values, (int) shape[0], (int) shape[1])
                    : new TensorPayload.Plain(values);
        }
        FrozenMatrix matrix = frozen.get(canonicalName);
        if (matrix == null) {
            throw new IllegalArgumentException("no weight " + canonicalName + " among the base weights");
        }
        return new TensorPayload.Widened(matrix, transposed);
    }

    /** A base tensor's floats as stored: its float32 array, or its frozen matrix widened whole (one tensor at a time). */
    private float[] baseValues(String canonicalName) {
        float[] values = weights.get(canonicalName);
        if (values != null) {
            return values;
        }
        FrozenMatrix matrix = frozen.get(canonicalName);
        if (matrix == null) {
            throw new IllegalArgumentException("no weight " + canonicalName + " among the base weights");
        }
        return matrix.toFloat32();
    }

    String constant(float value) {
        return floatConstants.computeIfAbsent(value, graph::scalar);
    }

    /** x·W (+ b) (+ s·(x·Aᵀ)·Bᵀ when un-merged and adapted), W written [in, out] whatever the checkpoint's layout. */
    String linear(String x, String canonicalModule) {
        LinearModule module = requireModule(canonicalModule);
        if (module.outputLayer()) {
            throw new IllegalArgumentException(canonicalModule + " is the output head; use outputHead");
        }
        String name = canonicalModule + ".weight";
        String y = switch (quantization.precision()) {
            case F32 -> graph.node("MatMul", x,
                    graph.weight(name, moduleWeight(module, !module.fanInFanOut()), module.in(), module.out()));
            case INT8 -> int8MatMul(x, withModuleValues(module, values -> int8Weight(name, matrix(module, values))));
            case INT4 -> withModuleValues(module, values -> int4MatMul(x, name, matrix(module, values)));
        };
        return withBiasAndLora(x, y, module);
    }

    /**
     * The outputs of linear modules that read the same x, in their order. Quantized, their weights lie side by
     * side in one MatMulNBits or int8 MatMul whose output is split per module: fewer and larger kernels, and x
     * quantized once, where a decode step's small MatMuls cost as much in dispatch as in arithmetic. Each
     * module's bias and, un-merged, its own float32 LoRA branch are added after the split. Float32 keeps one
     * MatMul per module (its kernels gain nothing from it, and its logits stay those of earlier exports).
     */
    List<String> linears(String x, List<String> canonicalModules) {
        if (!quantization.quantized() || canonicalModules.size() < 2) {
            return canonicalModules.stream().map(module -> linear(x, module)).toList();
        }
        List<LinearModule> modules = canonicalModules.stream().map(this::requireModule).toList();
        int in = modules.getFirst().in();
        if (modules.stream().anyMatch(module -> module.outputLayer() || module.in() != in)) {
            throw new IllegalArgumentException(canonicalModules + " do not all read the same input");
        }
        int out = modules.stream().mapToInt(LinearModule::out).sum();
        String name = sideBySideName(canonicalModules) + ".weight";
        String product = switch (quantization.precision()) {
            case INT8 -> int8MatMul(x, int8Weight(name, QuantizedWeights.int8SideBySide(modules.stream()
                    .map(module -> withModuleValues(module, values -> QuantizedWeights.int8(matrix(module, values))))
                    .toList()), in, out));
            case INT4 -> int4MatMul(x, name, QuantizedWeights.int4SideBySide(modules.stream()
                    .map(module -> withModuleValues(module, values -> int4Blocks(matrix(module, values))))
                    .toList()), in, out);
            case F32 -> throw new AssertionError("float32 linears are not put side by side");
        };
        List<String> parts = graph.nodeWithOutputs("Split", modules.size(),
                List.of(product, graph.ints(modules.stream().mapToLong(LinearModule::out).toArray())),
                Attribute.of("axis", -1));
        List<String> outputs = new ArrayList<>();
        for (int i = 0; i < modules.size(); i++) {
            outputs.add(withBiasAndLora(x, parts.get(i), modules.get(i)));
        }
        return outputs;
    }

    /** "model.layers.0.self_attn.q_proj+k_proj+v_proj": the modules' common prefix once, then their own names. */
    private static String sideBySideName(List<String> canonicalModules) {
        String first = canonicalModules.getFirst();
        String prefix = first.substring(0, first.lastIndexOf('.') + 1);
        StringBuilder name = new StringBuilder(first);
        for (String module : canonicalModules.subList(1, canonicalModules.size())) {
            name.append('+').append(module.startsWith(prefix) ? module.substring(prefix.length()) : module);
        }
        return name.toString();
    }

    /** y (+ b) (+ s·(x·Aᵀ)·Bᵀ when un-merged and adapted). */
    private String withBiasAndLora(String x, String y, LinearModule module) {
        if (layout.weight(module.path() + ".bias") != null) {
            y = graph.node("Add", y, weight(module.path() + ".bias"));
        }
        return withLora(x, y, module);
    }

    private static QuantizedWeights.Matrix matrix(LinearModule module, float[] values) {
        return new QuantizedWeights.Matrix(values, module.in(), module.out(), module.fanInFanOut());
    }

    /** An int8 initializer pair quantized from {@code weight}. */
    private Int8Weight int8Weight(String name, QuantizedWeights.Matrix weight) {
        return int8Weight(name, QuantizedWeights.int8(weight), weight.in(), weight.out());
    }

    private Int8Weight int8Weight(String name, QuantizedWeights.Int8Columns q, int in, int out) {
        return new Int8Weight(graph.weight(name + ".int8", OnnxGraph.INT8, new TensorPayload.Encoded(q.values()), in, out),
                graph.weight(name + ".scale", new TensorPayload.Plain(q.scales()), out));
    }

    /**
     * x·W for an int8 W as ONNX Runtime's quantize_dynamic writes it: x quantized to uint8 per call
     * (DynamicQuantizeLinear, one per MatMul so that ORT fuses all four nodes into DynamicQuantizeMatMul),
     * MatMulInteger, Cast, times x's scale · W's column scales.
     */
    private String int8MatMul(String x, Int8Weight weight) {
        List<String> quantized = graph.nodeWithOutputs("DynamicQuantizeLinear", 3, List.of(x));
        String product = graph.node("MatMulInteger", List.of(quantized.get(0), weight.values(), quantized.get(2)));
        String scale = graph.node("Mul", quantized.get(1), weight.scales());
        return graph.node("Mul", graph.node("Cast", product, Attribute.of("to", OnnxGraph.FLOAT)), scale);
    }

    /** x·W by com.microsoft.MatMulNBits over W's 4-bit blocks (the bias, if any, is added as in float32). */
    private String int4MatMul(String x, String name, QuantizedWeights.Matrix weight) {
        return int4MatMul(x, name, int4Blocks(weight), weight.in(), weight.out());
    }

    private QuantizedWeights.Int4Blocks int4Blocks(QuantizedWeights.Matrix weight) {
        return QuantizedWeights.int4(weight, quantization.blockSize(), quantization.zeroPoints());
    }

    /** x·W for W [in, out] held as {@code q}. */
    private String int4MatMul(String x, String name, QuantizedWeights.Int4Blocks q, int in, int out) {
        List<String> inputs = new ArrayList<>(List.of(x,
                graph.weight(name + ".int4", OnnxGraph.UINT8, new TensorPayload.Encoded(q.packed()), out, q.blocks(),
                        q.blobBytes()),
                graph.weight(name + ".scales", new TensorPayload.Plain(q.scales()), (long) out * q.blocks())));
        if (q.zeroPoints() != null) {
            inputs.add(graph.weight(name + ".zero_points", OnnxGraph.UINT8, new TensorPayload.Encoded(q.zeroPoints()),
                    (long) out * q.zeroPointBytesPerColumn()));
        }
        return graph.microsoftNode("MatMulNBits", inputs, Attribute.of("K", in), Attribute.of("N", out),
                Attribute.of("bits", 4), Attribute.of("block_size", quantization.blockSize()),
                Attribute.of("accuracy_level", quantization.accuracyLevel()));
    }

    /**
     * The token embedding of input_ids, [batch, seq, hidden]: a Gather of the float32 table, or with int8
     * embeddings of the int8 table stored [hidden, vocab] (the layout the tied head's MatMulInteger reads,
     * so that a tied model holds one int8 copy), gathered along the vocabulary and scaled per token.
     */
    String embed(String canonicalName) {
        if (!quantization.embeddingsInt8()) {
            return graph.node("Gather", floatEmbedding(canonicalName), GraphNames.INPUT_IDS);
        }
        Int8Weight table = int8Embedding(canonicalName);
        String columns = graph.node("Gather", List.of(table.values(), GraphNames.INPUT_IDS), Attribute.of("axis", 1));
        String rows = graph.node("Transpose", graph.node("Cast", columns, Attribute.of("to", OnnxGraph.FLOAT)),
                Attribute.ofInts("perm", 1, 2, 0));
        String scales = graph.node("Unsqueeze", graph.node("Gather", table.scales(), GraphNames.INPUT_IDS), graph.ints(-1));
        return graph.node("Mul", rows, scales);
    }

    private String floatEmbedding(String canonicalName) {
        return floatEmbeddings.computeIfAbsent(canonicalName, this::weight);
    }

    private Int8Weight int8Embedding(String canonicalName) {
        return int8Embeddings.computeIfAbsent(canonicalName, name -> {
            long[] shape = layout.weight(name).shape(); // [vocab, hidden]
            return int8Weight(name, new QuantizedWeights.Matrix(baseValues(name), (int) shape[1], (int) shape[0], false));
        });
    }

    /**
     * The logits, named {@value #GraphNames.LOGITS}: x·Wᵀ by Gemm with transB over [batch·seq, hidden], so a head
     * tied to the token embedding reads the same initializer as the embedding's Gather; with int8 embeddings
     * quantized as the linears are (int4 as MatMulNBits, as llama.cpp's Q4_0 and ORT's model builder quantize
     * the head; int8 as an int8 MatMul), or, tied, an int8 MatMul over the embedding's int8 table.
     *
     * @param tiedEmbedding the embedding's canonical name when the head is tied to it, else null
     */
    void outputHead(String x, String tiedEmbedding) {
        outputHead(x, tiedEmbedding, 0f);
    }

    /** {@link #outputHead}, the logits soft-capped as c·tanh(logits/c) when {@code softcap} c > 0 (Gemma 2). */
    void outputHead(String x, String tiedEmbedding, float softcap) {
        LinearModule module = requireModule(ModelLayout.OUTPUT_HEAD);
        LoRALinear adaptedHead = adapted.get(layout.peftModulePath(module.path()));
        boolean readsEmbedding = tiedEmbedding != null && (adaptedHead == null || unmerged);
        String logits;
        if (quantization.embeddingsInt8()) {
            String name = module.path() + ".weight";
            String product;
            if (readsEmbedding) {
                product = int8MatMul(x, int8Embedding(tiedEmbedding));
            } else if (quantization.precision() == WeightQuantization.Precision.INT4) {
                product = withModuleValues(module, values -> int4MatMul(x, name, matrix(module, values)));
            } else {
                product = int8MatMul(x, withModuleValues(module, values -> int8Weight(name, matrix(module, values))));
            }
            logits = withLora(x, product, module);
        } else {
            String weight = readsEmbedding ? floatEmbedding(tiedEmbedding)
                    : graph.weight(module.path() + ".weight", moduleWeight(module, false), module.out(), module.in());
            String rows = graph.node("Reshape", x, graph.ints(-1, module.in()));
            String logits2d = graph.node("Gemm", List.of(rows, weight), Attribute.of("transB", 1));
            String shape = graph.node("Concat", List.of(inputShape, graph.ints(module.out())), Attribute.of("axis", 0));
            logits = withLora(x, graph.node("Reshape", logits2d, shape), module);
        }
        if (softcap > 0) {
            logits = softcap(logits, softcap);
        }
        graph.nodeNamed("Identity", GraphNames.LOGITS, List.of(logits));
    }

    private LinearModule requireModule(String canonicalModule) {
        LinearModule module = linearModules.get(canonicalModule);
        if (module == null) {
            throw new IllegalArgumentException(canonicalModule + " is not a linear module of the "
                    + config.modelType() + " layout");
        }
        return module;
    }

    /**
     * A linear module's weight as stored, or transposed: W0, or — in a merged export of an adapted module —
     * W0 + s·B·A, merged by the module itself when the payload is written and unmerged right after, so that
     * one merged weight at a time is in memory and the bytes are those of {@link LoRALinear#merge()}.
     */
    private TensorPayload moduleWeight(LinearModule module, boolean transposed) {
        LoRALinear linear = adaptedModule(module);
        if (linear == null) {
            return basePayload(module.path() + ".weight", transposed);
        }
        if (unmerged) {
            return new TensorPayload.Widened(linear.frozenWeight(), transposed);
        }
        int rows = module.fanInFanOut() ? module.in() : module.out();
        int cols = module.fanInFanOut() ? module.out() : module.in();
        return new TensorPayload.Deferred(4L * rows * cols, () -> {
            linear.merge();
            try {
                float[] merged = linear.weight();
                return transposed ? new TensorPayload.Transposed(merged, rows, cols) : new TensorPayload.Plain(merged);
            } finally {
                linear.unmerge();
            }
        });
    }

    /**
     * For the quantized exports, which need a whole weight's floats: hands {@code use} a linear module's
     * weight as stored, as {@link #moduleWeight} writes it (merged for the moment in a merged export of an
     * adapted module, widened when frozen), so that one module's float32 weight at a time is in memory.
     */
    private <T> T withModuleValues(LinearModule module, Function<float[], T> use) {
        LoRALinear linear = adaptedModule(module);
        if (linear == null) {
            return use.apply(baseValues(module.path() + ".weight"));
        }
        if (unmerged) {
            return use.apply(linear.weight());
        }
        linear.merge();
        try {
            return use.apply(linear.weight());
        } finally {
            linear.unmerge();
        }
    }

    /** The module's LoRALinear, not merged (the export merges each module itself), or null when the module is not adapted. */
    private LoRALinear adaptedModule(LinearModule module) {
        LoRALinear linear = adapted.get(layout.peftModulePath(module.path()));
        if (linear == null) {
            if (module.outputLayer() && config.tieWordEmbeddings()) {
                throw new IllegalStateException("an unadapted tied head has no weight of its own");
            }
            return null;
        }
        if (linear.isMerged()) {
            throw new IllegalStateException(linear.name() + ": the adapter is merged; the export merges each module"
                    + " as it writes it");
        }
        return linear;
    }

    private String withLora(String x, String y, LinearModule module) {
        String peftPath = layout.peftModulePath(module.path());
        LoRALinear linear = adapted.get(peftPath);
        if (!unmerged || linear == null) {
            return y;
        }
        Dim rank = Dim.of(peftPath + ".r");
        // Every adapter's A, B and scaling stacked over slots (ranks zero-padded to the largest), and each row
        // gathering its own slot's (Punica's BGMV): a step's cost grows with the rows, not with the adapters.
        String a = graph.input(loraA(peftPath), OnnxGraph.FLOAT, LORA_SLOTS, rank, Dim.of(module.in()));
        String b = graph.input(loraB(peftPath), OnnxGraph.FLOAT, LORA_SLOTS, Dim.of(module.out()), rank);
        String scaling = graph.input(loraScaling(peftPath), OnnxGraph.FLOAT, LORA_SLOTS, Dim.of(1), Dim.of(1));
        loraInputs.addAll(List.of(a, b, scaling));
        if (loraSlot == null) {
            loraSlot = graph.node("Cast", graph.input(LORA_SLOT, OnnxGraph.FLOAT, LORA_ROWS),
                    Attribute.of("to", OnnxGraph.INT64));
        }
        Attribute transpose = Attribute.ofInts("perm", 0, 2, 1);
        Attribute rows = Attribute.of("axis", 0);
        String rowA = graph.node("Transpose", graph.node("Gather", List.of(a, loraSlot), rows), transpose);  // [rows, in, r]
        String rowB = graph.node("Transpose", graph.node("Gather", List.of(b, loraSlot), rows), transpose);  // [rows, r, out]
        String projected = graph.node("Mul", graph.node("MatMul", x, rowA), graph.node("Gather", List.of(scaling, loraSlot), rows));
        return graph.node("Add", y, graph.node("MatMul", projected, rowB));
    }

    /** torch.nn.LayerNorm over the last axis, as one LayerNormalization node (opset ≥ 17). */
    String layerNorm(String x, String canonicalModule, double eps) {
        return graph.node("LayerNormalization",
                List.of(x, weight(canonicalModule + ".weight"), weight(canonicalModule + ".bias")),
                Attribute.of("axis", -1), Attribute.of("epsilon", (float) eps));
    }

    /** x / √(mean(x²) + eps) · w, Llama's RMSNorm, from primitives. */
    String rmsNorm(String x, String canonicalWeight, double eps) {
        return rmsNorm(x, canonicalWeight, eps, false);
    }

    /** {@link #rmsNorm}, multiplying by 1 + w where {@code offsetByOne} (Gemma), as its RMSNorm does in float32. */
    String rmsNorm(String x, String canonicalWeight, double eps, boolean offsetByOne) {
        String squares = graph.node("Pow", x, constant(2f));
        String mean = opset >= 18
                ? graph.node("ReduceMean", List.of(squares, graph.ints(-1)), Attribute.of("keepdims", 1))
                : graph.node("ReduceMean", List.of(squares), Attribute.ofInts("axes", -1), Attribute.of("keepdims", 1));
        String rms = graph.node("Sqrt", graph.node("Add", mean, constant((float) eps)));
        return graph.node("Mul", graph.node("Div", x, rms), normWeight(canonicalWeight, offsetByOne));
    }

    /** A residual stream's new value and its RMSNorm. */
    record Residual(String sum, String normed) {}

    /**
     * x + branch and its RMSNorm ({@link #rmsNorm}) as one {@code com.microsoft.SkipSimplifiedLayerNormalization}:
     * ONNX Runtime fuses our RMSNorm into SimplifiedLayerNormalization but not the residual Add before it (its
     * SkipLayerNorm fusion wants an Add read by the norm alone, and a pre-norm block's sum is read twice).
     */
    Residual addRmsNorm(String x, String branch, String canonicalWeight, double eps, boolean offsetByOne) {
        List<String> outputs = graph.microsoftNodeWithOutputs("SkipSimplifiedLayerNormalization",
                new boolean[] {true, false, false, true}, List.of(x, branch, normWeight(canonicalWeight, offsetByOne)),
                Attribute.of("epsilon", (float) eps));
        return new Residual(outputs.get(3), outputs.get(0));
    }

    /** w, or 1 + w where {@code offsetByOne} (Gemma). */
    private String normWeight(String canonicalWeight, boolean offsetByOne) {
        String weight = weight(canonicalWeight);
        return offsetByOne ? graph.node("Add", weight, constant(1f)) : weight;
    }

    /** GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in the order ORT's FastGelu fusion matches. */
    String geluTanh(String x) {
        String cubic = graph.node("Mul", graph.node("Pow", x, constant(3f)), constant(0.044715f));
        String inner = graph.node("Mul", graph.node("Add", x, cubic), constant((float) Math.sqrt(2 / Math.PI)));
        String gate = graph.node("Add", graph.node("Tanh", inner), constant(1f));
        return graph.node("Mul", graph.node("Mul", x, gate), constant(0.5f));
    }

    /** silu(gate)·up. */
    String swiglu(String gate, String up) {
        return graph.node("Mul", graph.node("Mul", gate, graph.node("Sigmoid", gate)), up);
    }

    /** Core's cos and sin tables, [max_positions, head_dim/2] each, as the rotary initializers. */
    Rotary rotary(RopeTable table) {
        long half = table.headDim() / 2;
        return new Rotary(graph.weight("rotary.cos", new TensorPayload.Plain(table.cos()), table.maxPositions(), half),
                graph.weight("rotary.sin", new TensorPayload.Plain(table.sin()), table.maxPositions(), half));
    }

    /**
     * Multi-head causal attention over the cached and new keys of one layer; writes present.{layer}.*.
     *
     * @param query  [batch, seq, heads·head_dim]
     * @param key    [batch, seq, kv_heads·head_dim]
     * @param value  [batch, seq, kv_heads·head_dim]
     * @param rotary applied to query and key (Llama), or null (GPT-2)
     * @return [batch, seq, heads·head_dim]
     */
    String attention(int layer, String query, String key, String value, Rotary rotary) {
        return attention(layer, query, key, value, rotary, AttentionSpec.causal(config.headDim()));
    }

    /**
     * {@link #attention} with the scale, soft-cap and sliding window of {@code spec}, as core's kernels apply
     * them: scores·scale, then c·tanh(scores/c), then the mask. One {@code com.microsoft.GroupQueryAttention}
     * (GPT-2 too, kv_num_heads = num_heads): it writes the new keys and values into present.* after each row's
     * seqlens_k − sequence_length cached ones, in place when past.* and present.* are one buffer (ONNX Runtime
     * compares their data pointers), and reads each row's first seqlens_k + 1 slots only. Its local_window_size is
     * Transformers' sliding_window: each query sees that many keys, itself and those before it (ONNX Runtime 1.29,
     * checked against the Java forward by the windowed families' tests).
     */
    String attention(int layer, String query, String key, String value, Rotary rotary, AttentionSpec spec) {
        if (rotary != null) {
            query = rotate(query, config.numHeads(), rotary);
            key = rotate(key, kvHeads, rotary);
        }
        List<Attribute> attributes = new ArrayList<>(List.of(Attribute.of("num_heads", config.numHeads()),
                Attribute.of("kv_num_heads", kvHeads), Attribute.of("scale", spec.scale())));
        if (spec.logitSoftcap() > 0) {
            attributes.add(Attribute.of("softcap", spec.logitSoftcap()));
        }
        if (spec.slidingWindow() > 0) {
            attributes.add(Attribute.of("local_window_size", spec.slidingWindow()));
        }
        return graph.microsoftNodeNamed("GroupQueryAttention",
                List.of(graph.freshName("GroupQueryAttention"), GraphNames.presentKey(layer), GraphNames.presentValue(layer)),
                List.of(query, key, value, GraphNames.pastKey(layer), GraphNames.pastValue(layer), seqlensK,
                        totalSequenceLength),
                attributes.toArray(Attribute[]::new)).getFirst();
    }

    /**
     * x·cos + rotate_half(x)·sin on the halves layout, [x1·cos − x2·sin, x2·cos + x1·sin] per head, cos and sin
     * at each token's position_ids: one {@code com.microsoft.RotaryEmbedding} over [batch, seq, count·head_dim]
     * (interleaved 0), as ONNX Runtime's own exporters write RoPE, rather than the nine slicing and elementwise nodes
     * per tensor it is made of, which cost a decode step more in dispatch than in arithmetic.
     */
    private String rotate(String x, int count, Rotary rotary) {
        return graph.microsoftNode("RotaryEmbedding", List.of(x, GraphNames.POSITION_IDS, rotary.cos(), rotary.sin()),
                Attribute.of("interleaved", 0), Attribute.of("num_heads", count));
    }
}
