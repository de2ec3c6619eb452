package dev.loraflow.core.data;

import java.io.IOException;

/** A training-data file that cannot be used; the message names the file and, per bad line, its number. */
public class TrainingDataException extends IOException {

    public TrainingDataException(String message) {
        super(message);
    }

    public TrainingDataException(String message, Throwable cause) {
        super(message, cause);
    }
}
