package dev.loraflow.platform.reliability;

import java.time.Duration;

/**
 * Waits between tries of a transient failure: doubling from {@code initial} up to {@code max}, back to
 * {@code initial} after a success. Not thread-safe: one per loop.
 */
public final class Backoff {

    private final Duration initial;
    private final Duration max;
    private Duration next;
    private int failures;

    public Backoff(Duration initial, Duration max) {
        if (initial.isNegative() || initial.isZero() || max.compareTo(initial) < 0) {
            throw new IllegalArgumentException("backoff needs 0 < initial <= max, got " + initial + " and " + max);
        }
        this.initial = initial;
        this.max = max;
        this.next = initial;
    }

    /** The default of the services' loops: 1 s, 2 s, 4 s … 30 s. */
    public static Backoff standard() {
        return new Backoff(Duration.ofSeconds(1), Duration.ofSeconds(30));
    }

    /** Records a failure and returns how long to wait before the next try. */
    public Duration failed() {
        Duration wait = next;
        failures++;
        next = next.multipliedBy(2).compareTo(max) > 0 ? max : next.multipliedBy(2);
        return wait;
    }

    /** Failures in a row since the last success. */
    public int failures() {
        return failures;
    }

    public void succeeded() {
        next = initial;
        failures = 0;
    }

    /** Sleeps {@link #failed()}; an interrupt ends the sleep early and stays set. */
    public void sleepAfterFailure() {
        try {
            Thread.sleep(failed());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
