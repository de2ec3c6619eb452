package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.train.TrainingCheckpoint;
import dev.loraflow.core.merge.LoraMerge.OutputDType;
import dev.loraflow.core.merge.LoraMerge;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

@Command(name = "merge", mixinStandardHelpOptions = true,
        description = {"Folds a PEFT LoRA adapter into its base model: W = W0 + s·B·A, computed in float32, written as a",
                "Hugging Face model directory (config.json, model.safetensors with the base's tensor names, tokenizer files).",
                "The base SHA-256 a training checkpoint records (or --base-sha256) must match the base, checked as it is",
                "read; NaN/Inf aborts naming the module."})
final class MergeCommand implements Callable<Integer> {

    @Spec
    private CommandSpec spec;

    @Option(names = "--base", required = true, description = "Base model directory.")
    private Path base;

    @Option(names = "--adapter", required = true, description = "PEFT adapter directory.")
    private Path adapter;

    @Option(names = "--out", required = true, description = "Directory to write; must be new or empty.")
    private Path out;

    @Option(names = "--dtype", defaultValue = "base",
            description = "f32, f16, bf16, or base: each tensor as the base stores it (default: ${DEFAULT-VALUE}).")
    private String dtype;

    @Option(names = "--base-sha256", description = "The base digest the adapter was trained on, checked as the base is read; a mismatch writes nothing "
            + "(default: what the adapter directory's trainer_state.json records, else none: the base is hashed in a pass of its own first).")
    private String baseSha256;

    @Override
    public Integer call() throws Exception {
        OutputDType outputDType;
        try {
            outputDType = OutputDType.parse(dtype);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--" + e.getMessage());
        }
        Options.check(spec, baseSha256 == null || baseSha256.matches("[0-9a-f]{64}"),
                "--base-sha256 must be 64 lower-case hex digits, got " + baseSha256);
        // The digest the base must have: given, or recorded by the training run that made the adapter. Known, the base
        // is hashed from the very reads that merge it (one pass); unknown, in a pass of its own first.
        String expectedFrom = "--base-sha256";
        String expected = baseSha256;
        if (expected == null) {
            expected = TrainingCheckpoint.recordedBaseSha256(adapter).orElse(null);
            expectedFrom = expected == null ? null : adapter.resolve(TrainingCheckpoint.STATE_FILE).toString();
        }
        LoraMerge.Options options = new LoraMerge.Options(outputDType, expected);
        LoraMerge.Requirements needs = LoraMerge.requirements(base, options);
        needs.require(out, Files.size(adapter.resolve(PeftAdapter.WEIGHTS_FILE)));
        PeftAdapter peftAdapter = PeftAdapter.read(adapter);
        Quantization trainedOn = Quantization.recordedIn(peftAdapter.config());
        if (trainedOn != Quantization.NONE) {
            spec.commandLine().getErr().println("loraflow merge: the adapter was trained on the base quantized as "
                    + trainedOn + "; it is merged into the unquantized base " + base + ", as stored, as PEFT recommends");
        }
        LoraMerge.Result result = LoraMerge.merge(base, peftAdapter, Sha256.of(adapter.resolve(PeftAdapter.WEIGHTS_FILE)),
                out, options);
        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("model", out.toString());
        line.put("modules", result.modules().size());
        line.put("dtype", outputDType.toString());
        line.put("base", base.toString());
        line.put("base_sha256", result.baseSha256());
        line.put("base_sha256_expected_from", expectedFrom);
        line.put("base_passes", expected == null ? 2 : 1);
        line.put("adapter_trained_on", trainedOn == Quantization.NONE ? "base as stored" : trainedOn + " quantization of the base");
        line.put("model_safetensors_sha256", result.weightsSha256());
        line.put("adapter_sha256", result.adapterSha256());
        line.put("seconds", result.mergeNanos() / 1e9);
        spec.commandLine().getOut().println(line);
        return 0;
    }
}
