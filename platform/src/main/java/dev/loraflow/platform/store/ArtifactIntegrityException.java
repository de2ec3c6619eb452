package dev.loraflow.platform.store;

import java.io.IOException;

/** An artifact whose bytes do not match the digest it is referred to by. */
public class ArtifactIntegrityException extends IOException {

    public ArtifactIntegrityException(String message) {
        super(message);
    }
}
