package dev.loraflow.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.data.JsonlExamples;
import dev.loraflow.core.model.LoraTargets;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.train.LearningRateSchedule;
import dev.loraflow.core.train.MemoryEstimate;
import dev.loraflow.core.train.ProgressReport;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.core.train.TrainingCheckpoint;
import dev.loraflow.core.train.TrainingSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Trains a LoRA adapter on a base model and writes it as a PEFT adapter directory,",
                "with the training state beside it so that --resume continues bit-identically; the state records the",
                "base's SHA-256 (taken while training runs), which merge and --resume check the base against."})
final class TrainCommand implements Callable<Integer>, HeapSized {

    @Spec
    private CommandSpec spec;

    @Option(names = "--base", required = true, description = "Hugging Face base model directory.")
    private Path base;

    @Option(names = "--data", required = true, description = "JSONL examples (input_ids/labels, text, prompt/completion).")
    private Path data;

    @Option(names = "--out", required = true, description = "Adapter directory to write (and resume from).")
    private Path out;

    @Option(names = "--rank", defaultValue = "8", description = "LoRA rank r (default: ${DEFAULT-VALUE}).")
    private int rank;

    @Option(names = "--alpha", defaultValue = "16", description = "LoRA alpha (default: ${DEFAULT-VALUE}).")
    private double alpha;

    @Option(names = "--dropout", defaultValue = "0.05", description = "Dropout on the LoRA branch input (default: ${DEFAULT-VALUE}).")
    private double dropout;

    @Option(names = "--targets", split = ",", description = "Target modules: names/suffixes, or all-linear "
            + "(default: PEFT's for the architecture: c_attn for GPT-2, q_proj,v_proj for Llama).")
    private List<String> targets;

    @Option(names = "--use-rslora", description = "Scale by alpha/sqrt(r) instead of alpha/r.")
    private boolean useRslora;

    @Option(names = "--lr", defaultValue = "2e-4", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    private double learningRate;

    @Option(names = "--schedule", defaultValue = "cosine", description = "cosine or constant, after warmup (default: ${DEFAULT-VALUE}).")
    private String schedule;

    @Option(names = "--warmup-steps", defaultValue = "0", description = "Linear warmup steps (default: ${DEFAULT-VALUE}).")
    private long warmupSteps;

    @Option(names = "--weight-decay", defaultValue = "0.0", description = "AdamW weight decay (default: ${DEFAULT-VALUE}).")
    private double weightDecay;

    @Option(names = "--max-grad-norm", defaultValue = "1.0", description = "Gradient clipping, 0 for none (default: ${DEFAULT-VALUE}).")
    private double maxGradNorm;

    @Option(names = "--steps", defaultValue = "100", description = "Optimiser steps in all (default: ${DEFAULT-VALUE}).")
    private long steps;

    @Option(names = "--batch-size", defaultValue = "4", description = "Sequences per micro-batch (default: ${DEFAULT-VALUE}).")
    private int batchSize;

    @Option(names = "--seq-len", description = "Tokens per sequence (default: min(256, the model's context)).")
    private Integer seqLen;

    @Option(names = "--grad-accum", defaultValue = "1", description = "Micro-batches per step (default: ${DEFAULT-VALUE}).")
    private int gradAccum;

    @Option(names = "--save-every", defaultValue = "0", description = "Also checkpoint every N steps, 0 for only at the end (default: ${DEFAULT-VALUE}).")
    private long saveEvery;

    @Option(names = "--until-step", description = "Stop (and checkpoint) after this step; --resume continues to --steps later.")
    private Long untilStep;

    @Option(names = "--seed", defaultValue = "42", description = "Seeds A's initialisation, data order and dropout (default: ${DEFAULT-VALUE}).")
    private long seed;

    // Named by its positive form: picocli derives --no-shuffle from it, which sets false. (Declared as
    // --no-shuffle, picocli made --shuffle the negation, so --shuffle turned shuffling off.)
    @Option(names = "--shuffle", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Shuffle the examples each epoch (default); --no-shuffle keeps the file's order, as a stream would.")
    private boolean shuffle;

    @Option(names = "--resume", description = "Continue the run whose checkpoint is in --out.")
    private boolean resume;

    @Option(names = "--quantize", description = "Hold the base's linear weights as nf4 (QLoRA: 4-bit NormalFloat, "
            + "double-quantized absmaxes) or int8 (per output channel) instead of as stored; the adapter stays float32 "
            + "(default: none, or what a resumed run recorded).")
    private String quantize;

    @Option(names = "--gradient-checkpointing", negatable = true, description = "Keep only each transformer block's "
            + "input and recompute the block's forward in the backward: activation memory of one block instead of all, "
            + "the same gradients, about a third more compute (default: on only where the memory estimate says the "
            + "step would not fit without it; --no-gradient-checkpointing never).")
    private Boolean gradientCheckpointing;

    @Override
    public Integer call() throws Exception {
        Options.positive(spec, "--rank", rank);
        Options.check(spec, alpha > 0 && Double.isFinite(alpha), "--alpha must be > 0, got " + alpha);
        Options.check(spec, dropout >= 0 && dropout < 1, "--dropout must be in [0, 1), got " + dropout);
        Options.nonNegative(spec, "--lr", learningRate);
        Options.nonNegative(spec, "--weight-decay", weightDecay);
        Options.nonNegative(spec, "--max-grad-norm", maxGradNorm);
        Options.positive(spec, "--steps", steps);
        Options.positive(spec, "--batch-size", batchSize);
        Options.positive(spec, "--grad-accum", gradAccum);
        Options.check(spec, warmupSteps >= 0 && saveEvery >= 0, "--warmup-steps and --save-every must be >= 0");
        Options.check(spec, untilStep == null || untilStep > 0, "--until-step must be > 0");
        LearningRateSchedule.Shape shape = switch (schedule) {
            case "cosine" -> LearningRateSchedule.Shape.COSINE;
            case "constant" -> LearningRateSchedule.Shape.CONSTANT;
            default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--schedule must be cosine or constant, got " + schedule);
        };
        boolean hasCheckpoint = Files.exists(out.resolve(TrainingCheckpoint.STATE_FILE));
        if (resume && !hasCheckpoint) {
            throw new IllegalStateException(out + " holds no training checkpoint to resume");
        }
        if (!resume && hasCheckpoint) {
            throw new IllegalStateException(out + " already holds a training checkpoint: pass --resume to continue it,"
                    + " or choose another --out");
        }

        Plan plan = plan();
        LoraAdapterConfig lora = plan.lora();
        Quantization quantization = plan.quantization();
        int sequenceLength = plan.sequenceLength();
        MemoryEstimate estimate = plan.estimate();
        estimate.require((quantization == Quantization.NONE ? "--quantize nf4, " : "")
                + (estimate.gradientCheckpointing() ? "" : "--gradient-checkpointing, ")
                + "a smaller --batch-size or --seq-len,");
        if (gradientCheckpointing == null && estimate.gradientCheckpointing()) {
            spec.commandLine().getErr().println("loraflow train: gradient checkpointing on: without it the step's "
                    + "activations would not fit in memory (--no-gradient-checkpointing to refuse)");
        }
        // Hashed on a thread of its own while the model loads and the first steps run; every checkpoint records it,
        // so that a merge of the adapter checks its base as it reads it, in one pass.
        CompletableFuture<String> baseSha256 = ModelDigest.inBackground(base);
        try (ModelFiles files = ModelFiles.openForTraining(base, lora, seed, quantization)) {
            ModelConfig config = files.model().config();
            List<Example> examples = JsonlExamples.read(data, files.tokenizer(), config.vocabSize());
            TrainingSettings settings = new TrainingSettings(steps, batchSize, sequenceLength, gradAccum,
                    new LearningRateSchedule(shape, learningRate, warmupSteps, steps),
                    new AdamW.Settings(0.9f, 0.999f, 1e-8f, (float) weightDecay), maxGradNorm, seed,
                    estimate.gradientCheckpointing());
            String dataId = "sha256:" + Trainer.fingerprint(examples) + (shuffle ? ";shuffled" : ";in-order");
            Trainer trainer = new Trainer(files.model(), settings, dataId, baseSha256);
            if (resume) {
                trainer.restore(out);
            }
            BatchSampler sampler = new BatchSampler(examples, batchSize, sequenceLength, files.padId(), seed, shuffle,
                    trainer.dataPosition());
            var err = spec.commandLine().getErr();
            err.println("loraflow train: " + examples.size() + " examples, " + files.model().adaptedModules().size()
                    + " adapted modules, " + files.model().trainableParameters().stream().mapToLong(p -> p.size()).sum()
                    + " trainable parameters" + (quantization == Quantization.NONE ? "" : ", base quantized as " + quantization)
                    + (estimate.gradientCheckpointing() ? ", gradient checkpointing" : "")
                    + (resume ? ", resuming at step " + trainer.completedSteps() : ""));
            ProgressReport progress = new ProgressReport(err,
                    System.console() != null && System.console().isTerminal(), steps, trainer.completedSteps());
            Trainer.StepResult last = null;
            long tokens = 0;
            long stopAt = untilStep != null ? Math.min(untilStep, steps) : steps;
            while (trainer.completedSteps() < stopAt) {
                last = trainer.step(sampler);
                tokens += last.tokens();
                progress.update(last);
                if (saveEvery > 0 && last.step() % saveEvery == 0 && last.step() < stopAt) {
                    trainer.save(out);
                    err.println("loraflow train: checkpoint at step " + last.step() + " in " + out);
                }
            }
            trainer.save(out);
            ObjectNode summary = new ObjectMapper().createObjectNode();
            summary.put("adapter", out.toString());
            summary.put("base_sha256", baseSha256.join());
            summary.put("steps", trainer.completedSteps());
            summary.put("tokens", tokens);
            summary.put("quantization", quantization.toString());
            summary.put("gradient_checkpointing", estimate.gradientCheckpointing());
            if (last != null) {
                summary.put("loss", last.loss());
            }
            spec.commandLine().getOut().println(summary);
        }
        return 0;
    }

    /** The run's adapter config, quantization, sequence length and the memory its step takes. */
    private record Plan(LoraAdapterConfig lora, Quantization quantization, int sequenceLength, MemoryEstimate estimate) {}

    private Plan plan() throws Exception {
        Quantization asked;
        try {
            asked = quantize == null ? null : Quantization.parse(quantize);
        } catch (IllegalArgumentException e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--" + e.getMessage());
        }
        // A resumed run keeps the adapter config it started with (its quantization too); the LoRA options apply
        // to new runs only.
        ModelConfig baseConfig = ModelConfig.read(base.resolve("config.json"));
        LoraAdapterConfig lora;
        Quantization quantization;
        if (resume) {
            lora = PeftAdapter.read(out).config();
            quantization = Quantization.recordedIn(lora);
            if (asked != null && asked != quantization) {
                throw new IllegalStateException(out + " was trained on a base quantized as " + quantization
                        + "; resume it with --quantize " + quantization + " or without --quantize");
            }
        } else {
            quantization = asked == null ? Quantization.NONE : asked;
            lora = quantization.recordIn(loraConfig(baseConfig));
        }
        int sequenceLength = seqLen != null ? seqLen : Math.min(256, baseConfig.maxPositions());
        Options.check(spec, sequenceLength > 1 && sequenceLength <= baseConfig.maxPositions(),
                "--seq-len must be in [2, " + baseConfig.maxPositions() + "] (the model's context), got " + sequenceLength);
        return new Plan(lora, quantization, sequenceLength, MemoryEstimate.forTraining(base, baseConfig, lora, quantization,
                batchSize, sequenceLength, gradientCheckpointing, false));
    }

    /** The step's estimate, and the examples, which are read whole: their tokens as ints take about the file's size. */
    @Override
    public OptionalLong heapNeeded() throws Exception {
        return OptionalLong.of(plan().estimate().heapBytes() + Files.size(data));
    }

    private LoraAdapterConfig loraConfig(ModelConfig config) {
        LoraAdapterConfig.Builder builder = LoraAdapterConfig.builder().r(rank).loraAlpha(alpha).loraDropout(dropout)
                .useRslora(useRslora).baseModelNameOrPath(base.toString());
        if (targets == null || targets.isEmpty()) {
            builder.targetModules(LoraTargets.architectureDefault(config).toArray(String[]::new));
        } else if (targets.equals(List.of("all-linear"))) {
            builder.targetModules(new LoraAdapterConfig.TargetModules.AllLinear());
        } else {
            builder.targetModules(targets.toArray(String[]::new));
        }
        return builder.build();
    }

}
