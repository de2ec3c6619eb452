package dev.loraflow.platform.store;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Where the weights live — never Kafka. Artifacts are immutable directories addressed by the SHA-256
 * of their manifest (one {@code "<sha256>  <file>\n"} line per file in name order, as {@code sha256sum}
 * prints them); references are small named values (a job's newest checkpoint) replaced atomically.
 * {@link LocalArtifactStore} keeps them in a directory, {@link S3ArtifactStore} in an S3-compatible bucket;
 * {@link ArtifactStores#open} picks one from a location.
 */
public interface ArtifactStore {

    /** A stored directory: where it is and the digest that names its content. */
    record Artifact(URI uri, String sha256) {}

    /** What a {@link #deleteUnreferenced} sweep removed, and the bytes the store holds afterwards. */
    record Sweep(int artifactsDeleted, long bytesFreed, int artifactsKept, long bytesInUse) {}

    /**
     * Copies a flat directory into the store, durably and atomically: it is either absent or complete.
     * Storing the same content twice yields the same artifact.
     */
    Artifact putDirectory(Path source) throws IOException;

    /**
     * The directory on this machine's disk that {@link #putDirectory} copies into, so that a writer can check its free
     * space first; empty where the artifacts go elsewhere (a bucket).
     */
    Optional<Path> localRoot();

    /**
     * A local directory holding the artifact, checked against {@code sha256}: the manifest is hashed again
     * and every file against its line.
     *
     * @throws ArtifactIntegrityException if the content does not match the digest
     */
    Path open(URI uri, String sha256) throws IOException;

    /** The value last written under {@code name}, if any. */
    Optional<byte[]> readReference(String name) throws IOException;

    /** Replaces the value under {@code name} atomically (readers see the old or the new value, whole). */
    void writeReference(String name, byte[] value) throws IOException;

    /**
     * Writes {@code value} under {@code name} only if the reference holds {@code expected} now (absent when
     * empty), atomically with respect to other conditional writers in any process: of concurrent writers that
     * expect the same value, exactly one succeeds.
     *
     * @return whether the value was written
     */
    boolean compareAndSetReference(String name, Optional<byte[]> expected, byte[] value) throws IOException;

    /** The names of every reference, in name order. */
    List<String> referenceNames() throws IOException;

    /**
     * Deletes every artifact whose digest is not in {@code live} and that was stored (or stored again) longer
     * than {@code retention} before {@code now}, and what crashed writers left that long ago. A reader sees an
     * artifact whole or not at all while it goes.
     */
    Sweep deleteUnreferenced(Set<String> live, Duration retention, Instant now) throws IOException;

    /** The bytes the store holds: artifacts, references and writes in progress. */
    long diskUsage() throws IOException;
}
