package dev.loraflow.core.io;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.WritableByteChannel;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * A channel that digests every byte written through it — a file's SHA-256 in the pass that writes it — with the
 * work spread over threads of its own, so that on a machine with a second core hashing costs no time beside
 * producing the bytes, and the writes, which wait for the device (see {@link LargeFileWriter}), hold up nothing:
 * each buffer handed over passes a stage that runs the {@link BufferReader}s given with it (e.g. hashing the input
 * file its bytes were copied from), then the digest, then one of several writer threads, which write disjoint ranges
 * of the file at their positions, so that one of them waiting for the device stops none of the others.
 *
 * <p>A producer that fills whole buffers takes them from {@link #emptyBuffer()} and gives them back with
 * {@link #handOff}, and no byte is copied on the way; {@link #write} copies. The buffers are direct and aligned to
 * {@value #ALIGNMENT} bytes, so that the write system call reads them in place, or the device with direct I/O.
 * {@link #close()} waits until every byte is written and digested and every reader has run, and throws the first
 * failure of any of them; it leaves the target open (whoever opened it closes it).
 */
public final class DigestingChannel implements WritableByteChannel {

    /** Size of each of the pipeline's buffers: large sequential writes, a few of them in flight. */
    public static final int BUFFER_BYTES = 4 << 20;
    /** Alignment of the buffers' addresses: a multiple of every file system block size direct I/O may want. */
    public static final int ALIGNMENT = 4096;
    /** Writes in flight at once: while one waits for the device, the others go on. */
    public static final int WRITERS = 3;
    /** One being filled, one being read, one being digested, one per writer, and two spare. */
    private static final int BUFFERS = 5 + WRITERS;
    /** Put after the last filled buffer: each worker passes it on and ends. */
    private static final Block END = new Block(ByteBuffer.allocate(0), -1, List.of());

    /** Where the bytes go: {@code source}'s remaining bytes at {@code position} (from any of the writer threads). */
    @FunctionalInterface
    public interface PositionalTarget {
        int write(ByteBuffer source, long position) throws IOException;
    }

    /**
     * Work on a handed-over buffer's bytes, run on the pipeline's reading thread, in hand-over order; run even after a
     * failure elsewhere in the pipeline, so that a producer waiting for a reader to finish with its bytes goes on.
     */
    @FunctionalInterface
    public interface BufferReader {
        void read() throws IOException;
    }

    /** A filled buffer, where it goes in the file, and what reads it before it is reused. */
    private record Block(ByteBuffer buffer, long position, List<BufferReader> readers) {}

    private final PositionalTarget target;
    private final MessageDigest digest;
    private final BlockingQueue<ByteBuffer> empty = new ArrayBlockingQueue<>(BUFFERS);
    private final BlockingQueue<Block> filled = new ArrayBlockingQueue<>(BUFFERS + 1);
    private final BlockingQueue<Block> read = new ArrayBlockingQueue<>(BUFFERS + 1);
    private final BlockingQueue<Block> digested = new ArrayBlockingQueue<>(BUFFERS + 1);
    private final List<Thread> workers = new ArrayList<>();
    private volatile Throwable failure;
    /** The failure was thrown to the producer already: closing (in its try-with-resources) does not throw it again. */
    private boolean failureThrown;
    private long handedOver;
    private boolean closed;

    public DigestingChannel(PositionalTarget target, MessageDigest digest) {
        this.target = target;
        this.digest = digest;
        for (int i = 0; i < BUFFERS; i++) {
            empty.add(ByteBuffer.allocateDirect(BUFFER_BYTES + ALIGNMENT).alignedSlice(ALIGNMENT).slice(0, BUFFER_BYTES));
        }
        workers.add(Thread.ofPlatform().name("output-readers").daemon().start(this::runReaders));
        workers.add(Thread.ofPlatform().name("output-sha256").daemon().start(this::digest));
        for (int i = 0; i < WRITERS; i++) {
            workers.add(Thread.ofPlatform().name("output-writer-" + i).daemon().start(this::write));
        }
    }

    private void fail(Throwable cause) {
        synchronized (this) {
            if (failure == null) {
                failure = cause;
            }
        }
    }

    private void runReaders() {
        passOn(filled, read, true, block -> {
            for (BufferReader reader : block.readers) {
                reader.read();
            }
        });
    }

    private void digest() {
        passOn(read, digested, false, block -> digest.update(block.buffer.duplicate()));
    }

    /**
     * One stage: does {@code work} on each block from {@code from} (until a failure, unless {@code afterFailure}) and
     * puts it into {@code to}.
     */
    private void passOn(BlockingQueue<Block> from, BlockingQueue<Block> to, boolean afterFailure, BlockWork work) {
        try {
            for (Block block; (block = from.take()) != END; ) {
                if (afterFailure || failure == null) {
                    try {
                        work.run(block);
                    } catch (IOException | RuntimeException | Error e) {
                        fail(e);
                    }
                }
                to.put(block);
            }
            to.put(END);
        } catch (InterruptedException e) {
            fail(e);
            to.add(END); // never full: it holds at most every buffer
        }
    }

    @FunctionalInterface
    private interface BlockWork {
        void run(Block block) throws IOException;
    }

    private void write() {
        try {
            for (Block block; (block = digested.take()) != END; ) {
                if (failure == null) {
                    ByteBuffer buffer = block.buffer;
                    try {
                        while (buffer.hasRemaining()) {
                            target.write(buffer, block.position + buffer.position());
                        }
                    } catch (IOException e) {
                        fail(new IOException("writing bytes " + block.position + " to " + (block.position
                                + buffer.limit()) + " of the file failed: " + e.getMessage(), e));
                    } catch (RuntimeException | Error e) {
                        fail(e);
                    }
                }
                empty.put(block.buffer.clear());
            }
            digested.put(END); // for the next writer: the queue has room, this one just took END from it
        } catch (InterruptedException e) {
            fail(e);
        }
    }

    /** A cleared buffer of {@value #BUFFER_BYTES} bytes to fill, once one is free; waits for the writing otherwise. */
    public ByteBuffer emptyBuffer() throws IOException {
        requireOpen();
        try {
            return empty.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a free buffer");
        }
    }

    /**
     * Gives a buffer from {@link #emptyBuffer()} back with bytes {@code [0, position)} to write; the caller must
     * not touch it afterwards. Only the last buffer may be partly filled.
     */
    public void handOff(ByteBuffer buffer) throws IOException {
        handOff(buffer, List.of());
    }

    /**
     * {@link #handOff(ByteBuffer)}, with {@code readers} to run on the pipeline's reading thread before the buffer is
     * reused: they may read slices of the buffer (and anything else their producer leaves alone until they ran).
     */
    public void handOff(ByteBuffer buffer, List<BufferReader> readers) throws IOException {
        requireOpen();
        buffer.flip();
        Block block = new Block(buffer, handedOver, List.copyOf(readers));
        handedOver += buffer.remaining();
        try {
            filled.put(block);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while handing a buffer over");
        }
    }

    @Override
    public int write(ByteBuffer source) throws IOException {
        int count = source.remaining();
        while (source.hasRemaining()) {
            ByteBuffer buffer = emptyBuffer();
            int n = Math.min(buffer.remaining(), source.remaining());
            buffer.put(source.slice(source.position(), n));
            source.position(source.position() + n);
            handOff(buffer);
        }
        return count;
    }

    /** Throws the pipeline's first failure, if any: a producer may call it to stop early. */
    public void requireOpen() throws IOException {
        if (closed) {
            throw new ClosedChannelException();
        }
        rethrowFailure();
    }

    private void rethrowFailure() throws IOException {
        Throwable cause = failure;
        failureThrown |= cause != null;
        if (cause instanceof IOException e) {
            throw e;
        } else if (cause instanceof RuntimeException e) {
            throw e;
        } else if (cause instanceof Error e) {
            throw e;
        } else if (cause != null) {
            throw new InterruptedIOException("the writing thread was interrupted");
        }
    }

    @Override
    public boolean isOpen() {
        return !closed;
    }

    /** Waits for the bytes handed over to be read, digested and written; the target stays open. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        boolean interrupted = false;
        filled.add(END); // never full: it holds every buffer and END
        // the bytes already handed over are written whatever happens to this thread
        for (Thread worker : workers) {
            while (worker.isAlive()) {
                try {
                    worker.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (!failureThrown) {
            rethrowFailure();
        }
    }
}
