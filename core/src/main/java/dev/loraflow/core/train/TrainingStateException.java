package dev.loraflow.core.train;

import java.io.IOException;

/** A training checkpoint that is damaged, of another format, or from a run that cannot be continued here. */
public class TrainingStateException extends IOException {

    public TrainingStateException(String message) {
        super(message);
    }

    public TrainingStateException(String message, Throwable cause) {
        super(message, cause);
    }
}
