package dev.loraflow.inference;

/** A model could not be loaded, verified or warmed up; the message says which and why. */
public final class ModelLoadException extends Exception {

    public ModelLoadException(String message) {
        super(message);
    }

    public ModelLoadException(String message, Throwable cause) {
        super(message, cause);
    }
}
