package dev.loraflow.core.train;

import dev.loraflow.core.optim.AdamW;

/**
 * What a LoRA training run does, besides the model and the adapter config.
 *
 * @param steps           optimiser updates of the whole run
 * @param batchSize       sequences per micro-batch
 * @param seqLen          tokens per sequence: longer examples are truncated, shorter ones padded
 * @param gradAccum       micro-batches whose mean gradient makes one update
 * @param schedule        the learning rate of each update
 * @param maxGradNorm     global gradient-norm clipping; 0 turns it off
 * @param seed            fixes the data order and every dropout mask
 * @param gradientCheckpointing recompute each transformer block's forward in the backward, keeping only
 *                        block inputs: less activation memory, the same gradients, one more forward per step
 */
public record TrainingSettings(long steps, int batchSize, int seqLen, int gradAccum, LearningRateSchedule schedule,
                               AdamW.Settings optimizer, double maxGradNorm, long seed, boolean gradientCheckpointing) {

    /** Settings without gradient checkpointing. */
    public TrainingSettings(long steps, int batchSize, int seqLen, int gradAccum, LearningRateSchedule schedule,
                            AdamW.Settings optimizer, double maxGradNorm, long seed) {
        this(steps, batchSize, seqLen, gradAccum, schedule, optimizer, maxGradNorm, seed, false);
    }

    public TrainingSettings {
        if (steps <= 0) {
            throw new IllegalArgumentException("steps must be > 0, got " + steps);
        }
        if (batchSize <= 0 || seqLen <= 1 || gradAccum <= 0) {
            throw new IllegalArgumentException("batch size and gradient accumulation must be > 0 and seq len > 1, got "
                    + batchSize + ", " + gradAccum + " and " + seqLen);
        }
        if (schedule == null || optimizer == null) {
            throw new IllegalArgumentException("schedule and optimizer settings are required");
        }
        if (!(maxGradNorm >= 0) || !Double.isFinite(maxGradNorm)) {
            throw new IllegalArgumentException("max gradient norm must be finite and >= 0, got " + maxGradNorm);
        }
    }
}
