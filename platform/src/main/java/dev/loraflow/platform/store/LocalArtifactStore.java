package dev.loraflow.platform.store;

import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.io.Sha256;
import java.io.IOException;
import java.net.URI;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * An artifact store in a local directory:
 * {@code sha256/<digest>/} holds an artifact, {@code refs/<name>} a reference, {@code tmp/} writes in
 * progress, {@code locks/} the locks of conditional reference writes. An artifact's digest is the SHA-256 of its manifest — one {@code "<sha256>  <file>\n"} line
 * per file in name order, as {@code sha256sum} prints them — so it can be checked with standard tools.
 *
 * <p>A write copies into {@code tmp/}, forces every file and the directory to disk, then renames the
 * directory into place: a crash leaves either nothing or the whole artifact, never half of one.
 */
public final class LocalArtifactStore implements ArtifactStore {

    private static final Pattern DIGEST = ArtifactManifest.DIGEST;
    /** Conditional writers of this JVM; the file lock orders them with other processes'. */
    private static final ConcurrentHashMap<Path, ReentrantLock> LOCKS = new ConcurrentHashMap<>();
    private static final Pattern REFERENCE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,200}");

    private final Path root;

    public LocalArtifactStore(Path root) throws IOException {
        this.root = root.toAbsolutePath().normalize();
        Files.createDirectories(this.root.resolve("sha256"));
        Files.createDirectories(this.root.resolve("refs"));
        Files.createDirectories(this.root.resolve("tmp"));
        Files.createDirectories(this.root.resolve("locks"));
    }

    public Path root() {
        return root;
    }

    @Override
    public String toString() {
        return root.toString();
    }

    @Override
    public Optional<Path> localRoot() {
        return Optional.of(root);
    }

    @Override
    public Artifact putDirectory(Path source) throws IOException {
        List<Path> files = ArtifactManifest.files(source);
        Path staging = root.resolve("tmp").resolve(UUID.randomUUID().toString());
        Files.createDirectories(staging);
        try {
            for (Path file : files) {
                Path copy = staging.resolve(file.getFileName().toString());
                Files.copy(file, copy);
                force(copy);
            }
            String digest = Sha256.of(ArtifactManifest.of(staging).getBytes(StandardCharsets.UTF_8));
            force(staging);
            Path target = root.resolve("sha256").resolve(digest);
            if (Files.isDirectory(target)) {
                // Stored again: young again, so that retention does not delete it under the reference about to name it.
                Files.setLastModifiedTime(target, FileTime.from(Instant.now()));
            } else {
                try {
                    Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
                    force(target.getParent());
                } catch (FileAlreadyExistsException | DirectoryNotEmptyException raced) {
                    // another writer stored the same content first: theirs is as good as ours
                } catch (AtomicMoveNotSupportedException e) {
                    throw new IOException(root + ": the store's file system cannot rename atomically", e);
                }
            }
            return new Artifact(target.toUri(), digest);
        } finally {
            try {
                FileTrees.delete(staging);
            } catch (IOException leftover) {
                // a leftover staging directory is harmless: nothing refers to it
            }
        }
    }

    @Override
    public Path open(URI uri, String sha256) throws IOException {
        if (!DIGEST.matcher(sha256).matches()) {
            throw new ArtifactIntegrityException("\"" + sha256 + "\" is not a SHA-256 digest");
        }
        Path path;
        try {
            path = Path.of(uri).toAbsolutePath().normalize();
        } catch (IllegalArgumentException | java.nio.file.FileSystemNotFoundException e) {
            throw new IOException(uri + ": not a file URI of this store", e);
        }
        if (!path.getParent().equals(root.resolve("sha256"))) {
            throw new IOException(uri + ": outside the artifact store " + root);
        }
        if (!Files.isDirectory(path)) {
            throw new IOException(uri + ": no such artifact");
        }
        String actual = Sha256.of(ArtifactManifest.of(path).getBytes(StandardCharsets.UTF_8));
        if (!actual.equals(sha256) || !path.getFileName().toString().equals(sha256)) {
            throw new ArtifactIntegrityException(uri + ": content digest " + actual + " does not match " + sha256);
        }
        return path;
    }

    @Override
    public Optional<byte[]> readReference(String name) throws IOException {
        Path file = reference(name);
        return Files.isRegularFile(file) ? Optional.of(Files.readAllBytes(file)) : Optional.empty();
    }

    @Override
    public void writeReference(String name, byte[] value) throws IOException {
        AtomicFiles.write(reference(name), value);
    }

    /**
     * Under an exclusive lock on {@code locks/<name>} that every process's conditional writers take (and a JVM
     * lock, as file locks are per process): read, compare, then replace atomically as {@link #writeReference}.
     * An unconditional {@link #writeReference} does not take the lock: mix the two on one reference and the
     * unconditional write may land between the comparison and the replacement.
     */
    @Override
    public boolean compareAndSetReference(String name, Optional<byte[]> expected, byte[] value) throws IOException {
        Path file = reference(name);
        Path lockFile = root.resolve("locks").resolve(name);
        ReentrantLock local = LOCKS.computeIfAbsent(lockFile, key -> new ReentrantLock());
        local.lock();
        try (FileChannel channel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock ignored = channel.lock()) {
            Optional<byte[]> current = Files.isRegularFile(file) ? Optional.of(Files.readAllBytes(file)) : Optional.empty();
            boolean matches = expected.isEmpty() ? current.isEmpty()
                    : current.isPresent() && Arrays.equals(current.get(), expected.get());
            if (matches) {
                AtomicFiles.write(file, value);
            }
            return matches;
        } finally {
            local.unlock();
        }
    }

    @Override
    public List<String> referenceNames() throws IOException {
        try (Stream<Path> entries = Files.list(root.resolve("refs"))) {
            return entries.map(path -> path.getFileName().toString()).filter(name -> REFERENCE.matcher(name).matches())
                    .sorted().toList();
        }
    }

    /**
     * Deletes every artifact whose digest is not in {@code live} and that was stored (or stored again) longer
     * than {@code retention} before {@code now}, and writes in progress in {@code tmp/} that old (a crashed
     * writer's leftovers). An artifact is renamed out of {@code sha256/} before its files go, so a reader sees
     * it whole or not at all. The age is checked again just before, so an artifact stored again meanwhile stays.
     */
    @Override
    public Sweep deleteUnreferenced(Set<String> live, Duration retention, Instant now) throws IOException {
        Instant cutoff = now.minus(retention);
        int deleted = 0;
        int kept = 0;
        long freed = 0;
        List<Path> artifacts;
        try (Stream<Path> entries = Files.list(root.resolve("sha256"))) {
            artifacts = entries.filter(path -> DIGEST.matcher(path.getFileName().toString()).matches()).toList();
        }
        for (Path artifact : artifacts) {
            if (live.contains(artifact.getFileName().toString()) || !olderThan(artifact, cutoff)) {
                kept++;
                continue;
            }
            long bytes = FileTrees.size(artifact);
            Path doomed = root.resolve("tmp").resolve("deleting-" + artifact.getFileName() + "-" + UUID.randomUUID());
            try {
                Files.move(artifact, doomed, StandardCopyOption.ATOMIC_MOVE);
            } catch (java.nio.file.NoSuchFileException gone) {
                continue; // another sweep took it
            }
            FileTrees.delete(doomed);
            deleted++;
            freed += bytes;
        }
        try (Stream<Path> entries = Files.list(root.resolve("tmp"))) {
            for (Path leftover : entries.toList()) {
                if (olderThan(leftover, cutoff)) {
                    FileTrees.delete(leftover);
                }
            }
        }
        return new Sweep(deleted, freed, kept, diskUsage());
    }

    private static boolean olderThan(Path path, Instant cutoff) {
        try {
            return Files.getLastModifiedTime(path, java.nio.file.LinkOption.NOFOLLOW_LINKS).toInstant().isBefore(cutoff);
        } catch (IOException gone) {
            return false;
        }
    }

    /** The bytes of every file in the store: artifacts, references and writes in progress. */
    @Override
    public long diskUsage() throws IOException {
        return FileTrees.size(root);
    }

    private Path reference(String name) {
        if (!REFERENCE.matcher(name).matches()) {
            throw new IllegalArgumentException("reference name \"" + name + "\" must be 1–201 of [A-Za-z0-9._-]");
        }
        return root.resolve("refs").resolve(name);
    }

    private static void force(Path path) throws IOException {
        if (Files.isDirectory(path)) {
            try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
                channel.force(true);
            } catch (IOException e) {
                // some file systems cannot open directories for sync; the rename is still atomic there
            }
            return;
        }
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.WRITE)) {
            channel.force(true);
        }
    }
}
