package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.model.LoraTargets;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.train.LearningRateSchedule;
import dev.loraflow.core.train.TrainingSettings;
import java.util.List;
import java.util.regex.Pattern;

/**
 * A training job, as {@code loraflow.training.jobs} carries it (schema {@value #SCHEMA}, version
 * {@value #VERSION}; see docs/events.md).
 *
 * @param baseModel    the base model directory, relative to the trainer's models root
 * @param targets      PEFT target modules, {@code ["all-linear"]}, or empty for the architecture's default
 * @param totalSteps   optimiser steps of the whole job; 0 trains until the end-of-job marker
 * @param checkpointEvery a checkpoint every N steps, 0 for none between the start and the end
 * @param quantization how the base's linear weights are held while training ({@code lora.quantize}: QLoRA's
 *                     nf4, int8, or none)
 * @param gradientCheckpointing recompute each block's forward in the backward ({@code gradient_checkpointing});
 *                     null, when the job does not say, turns it on only where the step would not fit without it
 */
public record TrainingJob(String jobId, String baseModel, int rank, double alpha, double dropout, List<String> targets,
                          boolean useRslora, double learningRate, LearningRateSchedule.Shape schedule, long warmupSteps,
                          double weightDecay, double maxGradNorm, int batchSize, int seqLen, int gradAccum, long seed,
                          long totalSteps, long checkpointEvery, boolean checkpointAtEnd, Quantization quantization,
                          Boolean gradientCheckpointing) {

    public static final String SCHEMA = "loraflow.training.job";
    public static final int VERSION = 1;
    /** Job ids become Kafka keys and directory names: keep them to a safe alphabet. */
    private static final Pattern JOB_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    public TrainingJob {
        targets = List.copyOf(targets);
    }

    public boolean untilEndMarker() {
        return totalSteps == 0;
    }

    public static TrainingJob parse(byte[] value) throws EventFormatException {
        ObjectNode root = Json.parseObject(value, "training job");
        Json.requireSchema(root, SCHEMA, VERSION, "training job");
        String jobId = jobId(Json.text(root, "job_id", "training job"));
        String what = "training job " + jobId;
        String baseModel = Json.text(root, "base_model", what);
        JsonNode lora = Json.object(root, "lora", what);
        int rank = (int) Json.integer(lora, "r", 8, 1, 4096, what + " lora");
        double alpha = Json.number(lora, "alpha", 16, Double.MIN_VALUE, 1e6, what + " lora");
        double dropout = Json.number(lora, "dropout", 0.05, 0, 0.99, what + " lora");
        boolean useRslora = Json.bool(lora, "use_rslora", false, what + " lora");
        Quantization quantization;
        try {
            quantization = Quantization.parse(Json.optionalText(lora, "quantize", "none", what + " lora"));
        } catch (IllegalArgumentException e) {
            throw new EventFormatException(what + ": lora.quantize: " + e.getMessage());
        }
        JsonNode targetsNode = lora.get("target_modules");
        List<String> targets;
        if (targetsNode == null || targetsNode.isNull()) {
            targets = List.of();
        } else if (targetsNode.isTextual() && targetsNode.asText().equals("all-linear")) {
            targets = List.of("all-linear");
        } else if (targetsNode.isArray() && !targetsNode.isEmpty()) {
            targets = Json.strings(targetsNode, what + " lora.target_modules");
        } else {
            throw new EventFormatException(what + ": lora.target_modules must be \"all-linear\" or a non-empty list of names");
        }
        JsonNode optimizer = Json.object(root, "optimizer", what);
        double learningRate = Json.number(optimizer, "lr", 2e-4, 0, 10, what + " optimizer");
        String scheduleName = Json.optionalText(optimizer, "schedule", "cosine", what + " optimizer");
        LearningRateSchedule.Shape schedule = switch (scheduleName) {
            case "cosine" -> LearningRateSchedule.Shape.COSINE;
            case "constant" -> LearningRateSchedule.Shape.CONSTANT;
            default -> throw new EventFormatException(what + ": optimizer.schedule must be cosine or constant, got "
                    + scheduleName);
        };
        long warmup = Json.integer(optimizer, "warmup_steps", 0, 0, Long.MAX_VALUE, what + " optimizer");
        double weightDecay = Json.number(optimizer, "weight_decay", 0, 0, 10, what + " optimizer");
        double maxGradNorm = Json.number(optimizer, "max_grad_norm", 1, 0, 1e9, what + " optimizer");
        int batchSize = (int) Json.integer(root, "batch_size", 4, 1, 4096, what);
        int seqLen = (int) Json.integer(root, "seq_len", 256, 2, 1 << 20, what);
        int gradAccum = (int) Json.integer(root, "grad_accum", 1, 1, 4096, what);
        long seed = Json.integer(root, "seed", 42, Long.MIN_VALUE, Long.MAX_VALUE, what);
        long totalSteps = Json.integer(root, "total_steps", 0, 0, Long.MAX_VALUE / 2, what);
        JsonNode checkpoint = Json.object(root, "checkpoint", what);
        long every = Json.integer(checkpoint, "every_steps", 0, 0, Long.MAX_VALUE, what + " checkpoint");
        boolean atEnd = Json.bool(checkpoint, "at_end", true, what + " checkpoint");
        Boolean gradientCheckpointing = root.hasNonNull("gradient_checkpointing")
                ? Json.bool(root, "gradient_checkpointing", false, what) : null;
        if (totalSteps == 0 && schedule == LearningRateSchedule.Shape.COSINE) {
            throw new EventFormatException(what + ": a job that runs until its end-of-job marker has no known length;"
                    + " give total_steps or use optimizer.schedule \"constant\"");
        }
        if (!atEnd && every == 0) {
            throw new EventFormatException(what + ": no checkpoint would ever be written (checkpoint.every_steps 0 and"
                    + " at_end false)");
        }
        return new TrainingJob(jobId, baseModel, rank, alpha, dropout, targets, useRslora, learningRate, schedule, warmup,
                weightDecay, maxGradNorm, batchSize, seqLen, gradAccum, seed, totalSteps, every, atEnd, quantization,
                gradientCheckpointing);
    }

    static String jobId(String id) throws EventFormatException {
        if (!JOB_ID.matcher(id).matches()) {
            throw new EventFormatException("job_id \"" + id + "\" must be 1–128 of [A-Za-z0-9._-], starting alphanumeric");
        }
        return id;
    }

    public ObjectNode toJson() {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("job_id", jobId);
        root.put("base_model", baseModel);
        ObjectNode lora = root.putObject("lora");
        lora.put("r", rank);
        lora.put("alpha", alpha);
        lora.put("dropout", dropout);
        if (targets.equals(List.of("all-linear"))) {
            lora.put("target_modules", "all-linear");
        } else if (!targets.isEmpty()) {
            targets.forEach(lora.putArray("target_modules")::add);
        }
        lora.put("use_rslora", useRslora);
        if (quantization != Quantization.NONE) {
            lora.put("quantize", quantization.toString());
        }
        ObjectNode optimizer = root.putObject("optimizer");
        optimizer.put("lr", learningRate);
        optimizer.put("schedule", schedule.name().toLowerCase(java.util.Locale.ROOT));
        optimizer.put("warmup_steps", warmupSteps);
        optimizer.put("weight_decay", weightDecay);
        optimizer.put("max_grad_norm", maxGradNorm);
        root.put("batch_size", batchSize);
        root.put("seq_len", seqLen);
        root.put("grad_accum", gradAccum);
        root.put("seed", seed);
        if (gradientCheckpointing != null) {
            root.put("gradient_checkpointing", gradientCheckpointing);
        }
        root.put("total_steps", totalSteps);
        ObjectNode checkpoint = root.putObject("checkpoint");
        checkpoint.put("every_steps", checkpointEvery);
        checkpoint.put("at_end", checkpointAtEnd);
        return root;
    }

    /** The PEFT config this job trains, with the architecture's default targets when the job names none. */
    public LoraAdapterConfig loraConfig(ModelConfig base, String baseModelName) {
        LoraAdapterConfig.Builder builder = LoraAdapterConfig.builder().r(rank).loraAlpha(alpha).loraDropout(dropout)
                .useRslora(useRslora).baseModelNameOrPath(baseModelName);
        if (targets.isEmpty()) {
            builder.targetModules(LoraTargets.architectureDefault(base).toArray(String[]::new));
        } else if (targets.equals(List.of("all-linear"))) {
            builder.targetModules(new LoraAdapterConfig.TargetModules.AllLinear());
        } else {
            builder.targetModules(targets.toArray(String[]::new));
        }
        return quantization.recordIn(builder.build());
    }

    /** What core's Trainer runs, checkpointing as the job asks (else not); a job without a length runs "for ever" until its marker. */
    public TrainingSettings trainingSettings() {
        return trainingSettings(Boolean.TRUE.equals(gradientCheckpointing));
    }

    /** {@link #trainingSettings()} with gradient checkpointing as decided for this run (see {@link #gradientCheckpointing}). */
    public TrainingSettings trainingSettings(boolean checkpointing) {
        long steps = untilEndMarker() ? Long.MAX_VALUE / 2 : totalSteps;
        return new TrainingSettings(steps, batchSize, seqLen, gradAccum,
                new LearningRateSchedule(schedule, learningRate, warmupSteps, steps),
                new AdamW.Settings(0.9f, 0.999f, 1e-8f, (float) weightDecay), maxGradNorm, seed, checkpointing);
    }
}
