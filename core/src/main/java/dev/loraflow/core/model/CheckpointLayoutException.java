package dev.loraflow.core.model;

/** A checkpoint whose tensors do not match the layout its config describes; the message lists every difference. */
public class CheckpointLayoutException extends IllegalArgumentException {

    public CheckpointLayoutException(String message) {
        super(message);
    }
}
