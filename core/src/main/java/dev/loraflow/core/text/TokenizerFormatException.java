package dev.loraflow.core.text;

import java.io.IOException;

/** A {@code tokenizer.json} or {@code tokenizer_config.json} that is missing, malformed or unusable; the message names the file. */
public class TokenizerFormatException extends IOException {

    public TokenizerFormatException(String message) {
        super(message);
    }

    public TokenizerFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
