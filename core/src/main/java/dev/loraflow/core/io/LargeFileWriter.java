package dev.loraflow.core.io;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Writes a file of gigabytes, front to back or at positions from several threads, by the faster of two routes for its
 * size (measured on this project's 2-core, 24 GB virtual machine, merging BF16 models):
 * <ul>
 *   <li>{@link Route#PAGE_CACHE}, for a file the page cache holds several times over (at most a quarter of the memory
 *   available): buffered writes of at most {@value #PIECE_BYTES} bytes each, the bytes forced to the device every
 *   {@value #SYNC_INTERVAL_BYTES} bytes by the thread whose write crosses an interval's end, so that the device
 *   writes while the rest is produced and the last {@link #force()} has only the last stretch left (the dirty bytes of
 *   a file below the kernel's background threshold would otherwise wait for it). Pieces, because a larger write lets
 *   the kernel (ext4 with large folios) put it into large page-cache folios, whose first touch on a virtual machine
 *   whose idle memory the host took back costs several times the copy: 2.2 GB written 4 MiB at a time took 2.1–5.4 s
 *   of system time, 256 KiB at a time 0.5 s, as {@code cp} does. A 1.1 B merge (2.2 GB): 3.7–4.5 s this way against
 *   5.2–5.8 s direct, whose synchronous writes ran at 0.6–0.7 GB/s.</li>
 *   <li>{@link Route#DIRECT}, for a file about as large as memory: direct I/O where the file system allows it, from
 *   the caller's aligned buffer to the device around the page cache, which would otherwise evict what it caches
 *   (the file's own input among it) to take the file in: an 8 B merge (16 GB) took 28–31 s this way against 35 s
 *   through the page cache, with a third of its system time. Direct I/O wants the position, the length and the
 *   buffer's address aligned to {@link #alignment()}: aligned whole blocks of a direct buffer go around the page
 *   cache, anything else (the last bytes of the file, a heap buffer) is written buffered, so every write is accepted;
 *   where the file system refuses direct I/O, everything is written buffered.</li>
 * </ul>
 * Either way {@link #force()} makes the bytes durable (direct I/O does not flush the device's cache by itself).
 */
public final class LargeFileWriter implements WritableByteChannel {

    /** How the bytes reach the device. */
    public enum Route { PAGE_CACHE, DIRECT }

    /** The most bytes one buffered write system call takes. */
    static final int PIECE_BYTES = 256 << 10;
    /** Bytes written through the page cache between two forces. */
    static final long SYNC_INTERVAL_BYTES = 256L << 20;

    private final Route route;
    private final FileChannel buffered;
    private final int alignment;
    /** Null unless direct, or once the file system refused a direct write; then every write goes buffered. */
    private volatile FileChannel direct;
    private final long syncInterval;
    private final AtomicLong written = new AtomicLong();
    private final AtomicLong syncs = new AtomicLong();
    private long position;

    private LargeFileWriter(Route route, FileChannel buffered, FileChannel direct, int alignment, long syncInterval) {
        this.route = route;
        this.buffered = buffered;
        this.direct = direct;
        this.alignment = alignment;
        this.syncInterval = syncInterval;
    }

    /** Opens the existing {@code file} to write about {@code expectedBytes} into it, by the route for that size. */
    public static LargeFileWriter open(Path file, long expectedBytes) throws IOException {
        return open(file, routeFor(expectedBytes, Resources.memoryAvailable()), SYNC_INTERVAL_BYTES);
    }

    /** Through the page cache when the file takes at most a quarter of the memory available. */
    static Route routeFor(long expectedBytes, long memoryAvailable) {
        return expectedBytes <= memoryAvailable / 4 ? Route.PAGE_CACHE : Route.DIRECT;
    }

    static LargeFileWriter open(Path file, Route route, long syncInterval) throws IOException {
        FileChannel buffered = FileChannel.open(file, StandardOpenOption.WRITE);
        int alignment = 1;
        FileChannel direct = null;
        if (route == Route.DIRECT) {
            try {
                alignment = Math.toIntExact(Files.getFileStore(file).getBlockSize());
                direct = FileChannel.open(file, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT);
            } catch (IOException | UnsupportedOperationException | ArithmeticException noDirectIo) {
                // written buffered: correct everywhere, only slower
            }
        }
        return new LargeFileWriter(route, buffered, direct, alignment, syncInterval);
    }

    /** The alignment direct I/O wants of positions, lengths and buffer addresses: the file system's block size. */
    public int alignment() {
        return alignment;
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
     * threads may write disjoint ranges at once, so that one waiting for the device holds up none of the others.
     */
    public int write(ByteBuffer source, long at) throws IOException {
        int count = source.remaining();
        long start = at - source.position();
        if (route == Route.DIRECT) {
            writeDirect(source, at);
        }
        while (source.hasRemaining()) {
            ByteBuffer piece = source.slice(source.position(), Math.min(PIECE_BYTES, source.remaining()));
            source.position(source.position() + buffered.write(piece, start + source.position()));
        }
        if (route == Route.PAGE_CACHE) {
            long before = written.getAndAdd(count);
            if ((before + count) / syncInterval != before / syncInterval) {
                buffered.force(false);
                syncs.incrementAndGet();
            }
        }
        return count;
    }

    /** The whole aligned blocks at the front of {@code source}, around the page cache where that is allowed. */
    private void writeDirect(ByteBuffer source, long at) throws IOException {
        int whole = source.remaining() / alignment * alignment;
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
                // real failure (no space left) fails the buffered write all the same
                refuseDirect(blocksChannel);
            }
        }
    }

    private synchronized void refuseDirect(FileChannel refused) throws IOException {
        if (direct == refused) {
            direct = null;
            refused.close();
        }
    }

    /** How many times an interval's end has forced the bytes so far. */
    long syncs() {
        return syncs.get();
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
