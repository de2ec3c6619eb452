package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.data.JsonlExamples;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.merge.LoraMerge;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.LoraInputs;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.OnnxVerifier;
import dev.loraflow.onnx.WeightQuantization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

@Command(name = "export-onnx", mixinStandardHelpOptions = true,
        description = {"Exports a model (with its adapter merged, or as LoRA inputs with --unmerged) as one ONNX graph",
                "for prefill and KV-cached decoding, with Hugging Face Optimum's input and output names.",
                "config.json and the tokenizer files go beside it, so that serve and generate --model FILE.onnx run it.",
                "--verify runs it under ONNX Runtime against the Java forward and fails when they disagree.",
                "--quantize int8|int4 stores the linear weights quantized; --verify then reports the logit error and,",
                "with --verify-data, fails when the held-out loss rises above the bound (1 %% int8, 5 %% int4)."})
final class ExportOnnxCommand implements Callable<Integer>, HeapSized {

    @Spec
    private CommandSpec spec;

    @Option(names = "--model", required = true, description = "Model directory.")
    private Path model;

    @Option(names = "--adapter", description = "PEFT adapter directory.")
    private Path adapter;

    @Option(names = "--unmerged", description = "Adapters as graph inputs (lora.<module>.A/B/scaling) instead of merged.")
    private boolean unmerged;

    @Option(names = "--opset", defaultValue = "" + OnnxExporter.DEFAULT_OPSET,
            description = "ONNX opset, " + OnnxExporter.MIN_OPSET + " to " + OnnxExporter.MAX_OPSET + " (default: ${DEFAULT-VALUE}).")
    private int opset;

    @Option(names = "--out", required = true, description = "The .onnx file to write.")
    private Path out;

    @Option(names = "--verify", description = "Compare ONNX Runtime's logits with the Java model's (batch 4, prefill and decode).")
    private boolean verify;

    @Option(names = "--quantize", defaultValue = "f32", paramLabel = "f32|int8|int4",
            description = "Linear weights as float32, int8 per output channel (ORT's DynamicQuantizeMatMul) or int4 blocks"
                    + " (com.microsoft MatMulNBits, int8 compute). Default: ${DEFAULT-VALUE}.")
    private String quantize;

    @Option(names = "--int4-block-size", defaultValue = "" + WeightQuantization.DEFAULT_BLOCK_SIZE,
            description = "int4 block along the input dimension, a power of 2 ≥ 16, e.g. 32 or 128 (default: ${DEFAULT-VALUE}).")
    private int blockSize;

    @Option(names = "--int4-zero-points", description = "int4 blocks with a zero point each (min/max) instead of symmetric.")
    private boolean zeroPoints;

    @Option(names = "--int4-accuracy-level", defaultValue = "" + WeightQuantization.INT8_COMPUTE, paramLabel = "0-4",
            description = "MatMulNBits' accuracy_level: 4 lets ONNX Runtime's CPU kernel quantize the activations to int8"
                    + " per block (integer dot products), 0 or 1 computes in float32 (default: ${DEFAULT-VALUE}).")
    private int accuracyLevel;

    @Option(names = "--quantize-embeddings", defaultValue = "keep", paramLabel = "keep|int8",
            description = "With --quantize: the token embedding and output head kept float32, or the embedding int8 per token"
                    + " and the head quantized as the linears (int4 blocks in an int4 export; a tied head reads the"
                    + " embedding's int8 table) (default: ${DEFAULT-VALUE}).")
    private String quantizeEmbeddings;

    @Option(names = "--verify-data", paramLabel = "FILE.jsonl",
            description = "With --verify and --quantize: held-out examples (the formats of train --data) whose loss the"
                    + " quantized graph must keep within --max-loss-increase of the F32 model's.")
    private Path verifyData;

    @Option(names = "--max-loss-increase", paramLabel = "FRACTION",
            description = "Relative held-out loss increase a quantized graph may show (default: 0.01 int8, 0.05 int4).")
    private Double maxLossIncrease;

    /**
     * What the export holds ({@link OnnxExporter.Requirements#heapBytes}: the quantized weights until the graph is
     * written, the largest module's weight, the adapter; BF16/F16 matrices stay mapped). --verify is left to the
     * default heap: it runs the Java forward at batch 4 too.
     */
    @Override
    public OptionalLong heapNeeded() throws Exception {
        return verify ? OptionalLong.empty() : OptionalLong.of(OnnxExporter.requirements(model, adapter, quantization()).heapBytes());
    }

    @Override
    public Integer call() throws Exception {
        Options.check(spec, !unmerged || adapter != null, "--unmerged needs --adapter: the adapter decides which modules get LoRA inputs");
        Options.check(spec, out.getFileName() != null && out.getFileName().toString().endsWith(".onnx"),
                "--out must name a .onnx file, got " + out);
        OnnxExporter.Options options;
        try {
            options = OnnxExporter.Options.defaults().withOpset(opset).withUnmerged(unmerged);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--" + e.getMessage());
        }
        WeightQuantization quantization = quantization();
        options = options.withQuantization(quantization);
        Options.check(spec, verifyData == null || (verify && quantization.quantized()),
                "--verify-data needs --verify and --quantize int8|int4: it measures the quantized graph's loss");
        Options.check(spec, verifyData == null || Files.isRegularFile(verifyData), "--verify-data: no file " + verifyData);
        Options.check(spec, maxLossIncrease == null || (quantization.quantized() && maxLossIncrease >= 0),
                "--max-loss-increase needs --quantize and a fraction ≥ 0");
        // Float32 weights are written tensor by tensor whatever the checkpoint's dtype; quantized ones at most as large.
        OnnxExporter.Requirements needs = OnnxExporter.requirements(model, adapter, quantization);
        needs.require(out);
        ReferenceInputs referenceInputs = verify ? referenceInputs() : null;
        if (verify) {
            boolean smallest = quantization.precision() == WeightQuantization.Precision.INT4;
            OnnxVerifier.requireMemory(model, needs.diskBytes(), "the " + (quantization.quantized()
                    ? quantization.precision().label() : "float32") + " graph", "export without --verify"
                    + (smallest ? "" : " (or with --quantize int4, a smaller graph)") + ", or verify on a machine with"
                    + " more memory");
            OnnxVerifier.requireHeldOutHeap(model, ModelFiles.readAdapterConfig(adapter), referenceInputs.heldOut(),
                    "shorter --verify-data examples");
        }
        spec.commandLine().getErr().println("loraflow export-onnx: writing " + (quantization.quantized() ? "under " : "about ")
                + Resources.size(needs.diskBytes()) + " of " + (quantization.quantized() ? quantization.precision().label()
                : "float32") + " weights to " + out.toAbsolutePath().getParent() + " ("
                + Resources.size(Resources.diskAvailable(out)) + " free)");
        OnnxExporter.Result result = OnnxExporter.exportDirectory(model, adapter, options, out);
        copyModelFiles();
        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("onnx", result.model().toString());
        line.put("onnx_sha256", result.modelSha256());
        if (result.externalData() != null) {
            line.put("external_data", result.externalData().toString());
            line.put("external_data_sha256", result.externalDataSha256());
        }
        line.put("opset", opset);
        line.put("merged", adapter != null && !unmerged);
        line.put("lora_inputs", result.loraInputs().size());
        line.put("export_seconds", result.exportNanos() / 1e9);
        line.put("quantization", quantization.describe());
        if (verify && quantization.quantized()) {
            OnnxVerifier.QuantizedResult check = verifyQuantized(result.model(), quantization.precision(), referenceInputs);
            line.put("verified", check.passed());
            line.put("max_abs_logit_error", check.probe().maxAbsError());
            line.put("relative_logit_error", check.probe().relativeError());
            line.put("greedy_identical", check.probe().greedyIdentical());
            if (check.hasLoss()) {
                line.put("f32_loss", check.f32Loss());
                line.put("quantized_loss", check.graphLoss());
                line.put("loss_increase", check.lossIncrease());
                line.put("loss_tokens", check.tokens());
            }
            if (!check.passed()) {
                spec.commandLine().getOut().println(line);
                throw new IOException(out + ": verification " + check.summary());
            }
        } else if (verify) {
            OnnxVerifier.Result check = verify(result.model(), referenceInputs);
            line.put("verified", check.passed());
            line.put("max_abs_logit_error", check.maxAbsError());
            line.put("greedy_identical", check.greedyIdentical());
            if (!check.passed()) {
                spec.commandLine().getOut().println(line);
                throw new IOException(out + ": verification " + check.summary());
            }
        }
        spec.commandLine().getOut().println(line);
        return 0;
    }

    /** The graph alone has no context length or vocabulary, nor text: the model's files beside it give them. */
    private void copyModelFiles() throws IOException {
        Path directory = out.toAbsolutePath().getParent();
        List<String> names = new ArrayList<>(List.of("config.json"));
        names.addAll(LoraMerge.COPIED_FILES);
        for (String name : names) {
            Path source = model.resolve(name);
            if (Files.isRegularFile(source)) {
                Files.copy(source, directory.resolve(name), StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    private WeightQuantization quantization() {
        try {
            WeightQuantization.Precision precision = WeightQuantization.Precision.parse(quantize);
            boolean int8Embeddings = switch (quantizeEmbeddings) {
                case "keep" -> false;
                case "int8" -> true;
                default -> throw new IllegalArgumentException("quantize-embeddings is keep or int8, got '" + quantizeEmbeddings + "'");
            };
            Options.check(spec, precision == WeightQuantization.Precision.INT4 || (!zeroPoints
                            && blockSize == WeightQuantization.DEFAULT_BLOCK_SIZE && accuracyLevel == WeightQuantization.INT8_COMPUTE),
                    "--int4-block-size, --int4-zero-points and --int4-accuracy-level need --quantize int4");
            return WeightQuantization.of(precision).withBlockSize(blockSize).withZeroPoints(zeroPoints)
                    .withAccuracyLevel(accuracyLevel).withEmbeddingsInt8(int8Embeddings);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--" + e.getMessage());
        }
    }

    /** The probe's logit error against the F32 Java model, and the held-out loss of both when --verify-data is given. */
    private OnnxVerifier.QuantizedResult verifyQuantized(Path onnx, WeightQuantization.Precision precision,
                                                         ReferenceInputs inputs) throws IOException {
        OnnxVerifier.QuantizedBounds bounds = maxLossIncrease == null ? OnnxVerifier.QuantizedBounds.defaults(precision)
                : new OnnxVerifier.QuantizedBounds(maxLossIncrease);
        PeftAdapter peft = adapter == null ? null : PeftAdapter.read(adapter);
        return OnnxVerifier.verifyQuantized(onnx, reference(peft, inputs), loraInputs(peft), bounds, 1);
    }

    private OnnxVerifier.Result verify(Path onnx, ReferenceInputs inputs) throws IOException {
        PeftAdapter peft = adapter == null ? null : PeftAdapter.read(adapter);
        return OnnxVerifier.verify(onnx, reference(peft, inputs), loraInputs(peft), OnnxVerifier.DEFAULT_TOLERANCE, 1);
    }

    /** What the Java reference runs on beside the probe: the --verify-data examples (none without it) and the padding id. */
    private record ReferenceInputs(List<Example> heldOut, int padId) {}

    /** Read before the export, so that the held-out examples' forward is checked against the heap with the rest. */
    private ReferenceInputs referenceInputs() throws IOException {
        try (Tokenizer tokenizer = ModelFiles.readTokenizer(model)) {
            List<Example> heldOut = verifyData == null ? List.of() : JsonlExamples.read(verifyData, tokenizer,
                    ModelConfig.read(model.resolve("config.json")).vocabSize());
            return new ReferenceInputs(heldOut, ModelFiles.padId(StopTokens.of(model, tokenizer)));
        }
    }

    /**
     * The Java model (base + adapter, un-merged) run over the probe and the held-out examples, its weights released
     * before ONNX Runtime's session is created: one of the two in memory at a time.
     */
    private OnnxVerifier.Reference reference(PeftAdapter peft, ReferenceInputs inputs) throws IOException {
        return OnnxVerifier.Reference.of(model, peft, OnnxVerifier.Probe.standard(), inputs.heldOut(), inputs.padId());
    }

    private Map<String, FloatTensor> loraInputs(PeftAdapter peft) {
        return unmerged ? LoraInputs.of(peft) : Map.of();
    }
}
