package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.merge.LoraMerge;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.LoraInputs;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.OnnxVerifier;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
                "--verify runs it under ONNX Runtime against the Java forward and fails when they disagree."})
final class ExportOnnxCommand implements Callable<Integer> {

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
        // The graph's weights are float32 on disk whatever the checkpoint's dtype; they are written tensor by tensor.
        OnnxExporter.Requirements needs = OnnxExporter.requirements(model);
        needs.require("export-onnx", out);
        spec.commandLine().getErr().println("loraflow export-onnx: writing about " + Resources.size(needs.diskBytes())
                + " of float32 weights to " + out.toAbsolutePath().getParent() + " ("
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
        if (verify) {
            OnnxVerifier.Result check = verify(result.model());
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

    private OnnxVerifier.Result verify(Path onnx) throws IOException {
        if (adapter == null) {
            return OnnxVerifier.verify(onnx, CausalLanguageModel.load(model, null, 0));
        }
        PeftAdapter peft = PeftAdapter.read(adapter);
        CausalLanguageModel reference = CausalLanguageModel.load(model, peft.config(), 0);
        reference.loadAdapter(peft);
        var feeds = unmerged ? LoraInputs.of(peft) : Map.<String, FloatTensor>of();
        return OnnxVerifier.verify(onnx, reference, OnnxVerifier.Probe.standard(), feeds, OnnxVerifier.DEFAULT_TOLERANCE, 1);
    }
}
