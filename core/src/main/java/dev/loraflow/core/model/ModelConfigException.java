package dev.loraflow.core.model;

/** A model {@code config.json} that is malformed or describes a model loraflow cannot run. */
public class ModelConfigException extends IllegalArgumentException {

    public ModelConfigException(String message) {
        super(message);
    }

    public ModelConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
