package dev.loraflow.core.safetensors;

import java.io.IOException;

/**
 * A safetensors file (or shard index) that is malformed or does not hold what was asked for. The
 * message names the file and, where one is involved, the tensor.
 */
public class SafetensorsException extends IOException {

    public SafetensorsException(String message) {
        super(message);
    }

    public SafetensorsException(String message, Throwable cause) {
        super(message, cause);
    }
}
