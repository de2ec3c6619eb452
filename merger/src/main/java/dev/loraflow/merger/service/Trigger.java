package dev.loraflow.merger.service;

import dev.loraflow.platform.events.CheckpointEvent;
import java.util.Locale;

/** Which checkpoints the merger merges as they arrive; any checkpoint it has seen can also be asked for (POST /merges). */
public enum Trigger {
    /** Every checkpoint. */
    EVERY,
    /** A job's final checkpoint only. */
    FINAL,
    /** None by itself: only those asked for. */
    REQUEST;

    /** {@code every}, {@code final} or {@code request}. */
    public static Trigger parse(String text) {
        for (Trigger trigger : values()) {
            if (trigger.name().equalsIgnoreCase(text.strip())) {
                return trigger;
            }
        }
        throw new IllegalArgumentException("loraflow.merger.trigger must be every, final or request, got '" + text + "'");
    }

    public boolean mergesOnArrival(CheckpointEvent checkpoint) {
        return switch (this) {
            case EVERY -> true;
            case FINAL -> checkpoint.last();
            case REQUEST -> false;
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
