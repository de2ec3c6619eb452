package dev.loraflow.platform.store;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Where the weights live — never Kafka. Artifacts are immutable directories addressed by the SHA-256
 * of their content; references are small named values (a job's newest checkpoint) replaced atomically.
 * {@link LocalArtifactStore} is the default; an S3-compatible store implements the same contract.
 */
public interface ArtifactStore {

    /** A stored directory: where it is and the digest that names its content. */
    record Artifact(URI uri, String sha256) {}

    /**
     * Copies a flat directory into the store, durably and atomically: it is either absent or complete.
     * Storing the same content twice yields the same artifact.
     */
    Artifact putDirectory(Path source) throws IOException;

    /**
     * A local directory holding the artifact, checked against {@code sha256}.
     *
     * @throws ArtifactIntegrityException if the content does not match the digest
     */
    Path open(URI uri, String sha256) throws IOException;

    /** The value last written under {@code name}, if any. */
    Optional<byte[]> readReference(String name) throws IOException;

    /** Replaces the value under {@code name} atomically (readers see the old or the new value, whole). */
    void writeReference(String name, byte[] value) throws IOException;
}
