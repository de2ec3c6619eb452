package dev.loraflow.core.peft;

import java.io.IOException;

/**
 * A PEFT adapter directory, config or weights file that is malformed or uses a PEFT feature
 * loraflow does not implement. The message names the file and the offending key or module.
 */
public class PeftFormatException extends IOException {

    public PeftFormatException(String message) {
        super(message);
    }

    public PeftFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
