package dev.loraflow.core.io;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes a file front to back with direct I/O where the file system allows it: the bytes go from the caller's
 * buffer to the device, not through the page cache. A buffered write of gigabytes spends most of its CPU time
 * copying into freshly allocated page-cache pages (several times what hashing the same bytes costs on a loaded
 * machine), then leaves them dirty for the flusher, pushing other files out of the cache; direct I/O does neither.
 *
 * <p>Direct I/O wants the file position, the length and the buffer's address aligned to {@link #alignment()}: the
 * aligned whole blocks of an aligned direct buffer written at an aligned position go around the page cache; anything
 * else (the last bytes of the file, a heap buffer) is written buffered, so every write is accepted. Where the file
 * system refuses direct I/O (tmpfs on older kernels), everything is written buffered. {@link #force()} makes the
 * bytes durable either way: direct I/O does not flush the device's cache by itself.
 */
public final class DirectFileWriter implements WritableByteChannel {

    private final FileChannel buffered;
    private final int alignment;
    /** Null once the file system refused a direct write; then every write goes buffered. */
    private volatile FileChannel direct;
    private long position;

    private DirectFileWriter(FileChannel buffered, FileChannel direct, int alignment) {
        this.buffered = buffered;
        this.direct = direct;
        this.alignment = alignment;
    }

    /** Opens the existing {@code file} to write it from its first byte. */
    public static DirectFileWriter open(Path file) throws IOException {
        FileChannel buffered = FileChannel.open(file, StandardOpenOption.WRITE);
        int alignment = 1;
        FileChannel direct = null;
        try {
            alignment = Math.toIntExact(Files.getFileStore(file).getBlockSize());
            direct = FileChannel.open(file, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT);
        } catch (IOException | UnsupportedOperationException | ArithmeticException noDirectIo) {
            // written buffered: correct everywhere, only slower
        }
        return new DirectFileWriter(buffered, direct, alignment);
    }

    /** The alignment direct I/O wants of positions, lengths and buffer addresses: the file system's block size. */
    public int alignment() {
        return alignment;
    }

    /** Whether writes go around the page cache at all (false where the file system refuses direct I/O). */
    public boolean direct() {
        return direct != null;
    }

    /** Appends all of {@code source}'s remaining bytes. */
    @Override
    public int write(ByteBuffer source) throws IOException {
        int count = write(source, position);
        position += count;
        return count;
    }

    /**
     * Writes all of {@code source}'s remaining bytes at {@code at}, without moving the append position: several
     * threads may write disjoint ranges at once, so that the device has several requests to work on.
     */
    public int write(ByteBuffer source, long at) throws IOException {
        int count = source.remaining();
        int whole = count / alignment * alignment;
        FileChannel blocksChannel = direct;
        if (blocksChannel != null && whole > 0 && at % alignment == 0 && source.isDirect()
                && source.alignmentOffset(source.position(), alignment) == 0) {
            ByteBuffer blocks = source.slice(source.position(), whole);
            try {
                while (blocks.hasRemaining()) {
                    blocksChannel.write(blocks, at + blocks.position());
                }
                source.position(source.position() + whole);
            } catch (IOException refused) {
                // some file systems open with O_DIRECT but refuse the write (EINVAL): the rest goes buffered, and a
                // real failure (no space left) fails the buffered write below all the same
                refuseDirect(blocksChannel);
            }
        }
        while (source.hasRemaining()) {
            buffered.write(source, at + count - source.remaining());
        }
        return count;
    }

    private synchronized void refuseDirect(FileChannel refused) throws IOException {
        if (direct == refused) {
            direct = null;
            refused.close();
        }
    }

    /** Forces what was written, and the file's size, to the device. */
    public void force() throws IOException {
        buffered.force(true);
    }

    @Override
    public boolean isOpen() {
        return buffered.isOpen();
    }

    @Override
    public void close() throws IOException {
        try (buffered) {
            FileChannel blocksChannel = direct;
            if (blocksChannel != null) {
                blocksChannel.close();
            }
        }
    }
}
