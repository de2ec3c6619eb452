package dev.loraflow.core.train;

/**
 * The learning rate of each optimiser step, as Transformers' {@code get_cosine_schedule_with_warmup}
 * and {@code get_constant_schedule_with_warmup} compute it: a linear warmup from 0 over
 * {@code warmupSteps}, then a half cosine down to 0 at {@code totalSteps} (and 0 after it), or constant.
 */
public record LearningRateSchedule(Shape shape, double peak, long warmupSteps, long totalSteps) {

    public enum Shape { COSINE, CONSTANT }

    public LearningRateSchedule {
        if (shape == null) {
            throw new IllegalArgumentException("schedule shape is required");
        }
        if (!(peak >= 0) || !Double.isFinite(peak)) {
            throw new IllegalArgumentException("learning rate must be finite and >= 0, got " + peak);
        }
        if (warmupSteps < 0 || totalSteps <= 0) {
            throw new IllegalArgumentException("warmup steps must be >= 0 and total steps > 0, got " + warmupSteps
                    + " and " + totalSteps);
        }
    }

    /** The rate of the update that completes step {@code step + 1}: {@code step} counts the updates before it. */
    public float at(long step) {
        if (step < warmupSteps) {
            return (float) (peak * step / Math.max(1, warmupSteps));
        }
        if (shape == Shape.CONSTANT) {
            return (float) peak;
        }
        double progress = Math.min(1, (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
        return (float) (peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress))));
    }
}
