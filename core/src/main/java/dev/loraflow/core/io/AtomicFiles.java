package dev.loraflow.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes files so that a reader sees either the old file or the complete new one, never a torn
 * write: the bytes go to a temporary file in the target's directory, are forced to disk, and the
 * temporary file is renamed over the target.
 */
public final class AtomicFiles {

    /** Produces a file's content. */
    @FunctionalInterface
    public interface ContentWriter {
        void writeTo(FileChannel channel) throws IOException;
    }

    /** Produces a file's content through a {@link LargeFileWriter}: front to back, or at positions. */
    @FunctionalInterface
    public interface LargeContentWriter {
        void writeTo(LargeFileWriter file) throws IOException;
    }

    /** Fills the temporary file that is then renamed over the target. */
    @FunctionalInterface
    private interface TemporaryWriter {
        void fill(Path temporary) throws IOException;
    }

    private AtomicFiles() {}

    /** Atomically replaces {@code target} with what {@code content} writes. */
    public static void write(Path target, ContentWriter content) throws IOException {
        replace(target, temporary -> {
            try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.WRITE)) {
                content.writeTo(channel);
                channel.force(true);
            }
        });
    }

    /**
     * Atomically replaces {@code target} with what {@code content} writes through a {@link LargeFileWriter}: for
     * files of gigabytes, about {@code expectedBytes} long.
     */
    public static void writeLarge(Path target, long expectedBytes, LargeContentWriter content) throws IOException {
        replace(target, temporary -> {
            try (LargeFileWriter channel = LargeFileWriter.open(temporary, expectedBytes)) {
                content.writeTo(channel);
                channel.force();
            }
        });
    }

    private static void replace(Path target, TemporaryWriter content) throws IOException {
        Path absolute = target.toAbsolutePath();
        Path directory = absolute.getParent();
        Path temporary = createTemporarySibling(absolute);
        boolean moved = false;
        try {
            content.fill(temporary);
            Files.move(temporary, absolute, StandardCopyOption.ATOMIC_MOVE);
            moved = true;
            forceDirectory(directory);
        } finally {
            if (!moved) {
                Files.deleteIfExists(temporary);
            }
        }
    }

    /** Atomically replaces {@code target} with {@code bytes}. */
    public static void write(Path target, byte[] bytes) throws IOException {
        write(target, channel -> {
            ByteBuffer buffer = ByteBuffer.wrap(bytes);
            while (buffer.hasRemaining()) {
                channel.write(buffer);
            }
        });
    }

    // Files.createTempFile would create the file with mode 0600, and the rename would carry that
    // mode over to the target, so a model written by one user could not be served by another.
    // CREATE_NEW honours the umask like any ordinary file creation.
    private static Path createTemporarySibling(Path target) throws IOException {
        for (int attempt = 0; ; attempt++) {
            String suffix = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
            Path candidate = target.resolveSibling("." + target.getFileName() + "." + suffix + ".tmp");
            try {
                FileChannel.open(candidate, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
                return candidate;
            } catch (FileAlreadyExistsException collision) {
                if (attempt >= 8) {
                    throw collision;
                }
            }
        }
    }

    // The rename is durable only once the directory entry is on disk. Some platforms (Windows)
    // cannot open a directory as a channel; there the rename is as durable as the OS makes it.
    private static void forceDirectory(Path directory) {
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException unsupported) {
            // The file itself is complete and renamed; only the directory sync is unavailable.
        }
    }
}
