package dev.loraflow.trainer.service;

import java.util.Locale;

/**
 * Crash points for the recovery tests: with {@code LORAFLOW_TRAINER_FAULT=<point>:<step>} the process
 * halts — no shutdown hooks, no flushing, as under SIGKILL — when it reaches that point at that step;
 * with {@code out-of-memory:<step>} the training loop's thread gets an {@link OutOfMemoryError} in the
 * middle of that step, as a real one would end it, and the process stays up.
 * Unset in production; the points are named in docs/trainer.md.
 */
public final class Faults {

    /** Where in the step and checkpoint protocol the process may be made to die. */
    public enum Point {
        /** Between a step's forward/backward and its optimiser update. */
        MID_STEP,
        /** The checkpoint artifact is stored; the job's reference still names the previous one. */
        AFTER_CHECKPOINT_WRITE,
        /** The reference names the new checkpoint; its event is not yet published. */
        AFTER_REFERENCE,
        /** The event is published; the consumer offsets are not yet committed. */
        AFTER_EVENT,
        /** Mid-step, like {@link #MID_STEP}, but an Error on the loop's thread instead of a halt. */
        OUT_OF_MEMORY
    }

    private final Point point;
    private final long step;

    private Faults(Point point, long step) {
        this.point = point;
        this.step = step;
    }

    public static Faults none() {
        return new Faults(null, -1);
    }

    /** Parses {@code point:step}, e.g. {@code after-checkpoint-write:4}; empty or null for none. */
    public static Faults parse(String spec) {
        if (spec == null || spec.isBlank()) {
            return none();
        }
        int colon = spec.lastIndexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException("fault \"" + spec + "\" must be <point>:<step>");
        }
        Point point = Point.valueOf(spec.substring(0, colon).trim().toUpperCase(Locale.ROOT).replace('-', '_'));
        return new Faults(point, Long.parseLong(spec.substring(colon + 1).trim()));
    }

    /** Halts the JVM if this is the configured point and step. */
    public void reach(Point reached, long atStep) {
        if (point == Point.OUT_OF_MEMORY && reached == Point.MID_STEP && atStep == step) {
            throw new OutOfMemoryError("loraflow trainer: injected out-of-memory at step " + atStep);
        }
        if (reached == point && atStep == step) {
            System.err.println("loraflow trainer: injected crash at " + reached + " step " + atStep);
            Runtime.getRuntime().halt(137);
        }
    }
}
