package dev.loraflow.core.io;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.WritableByteChannel;
import java.security.MessageDigest;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * A channel that digests every byte written through it — a file's SHA-256 in the pass that writes it — and
 * does the digesting on a thread of its own and the writing on another, so that on a machine with a second core
 * hashing costs no time beside producing the bytes, and a write that waits for the device (direct I/O, see
 * {@link DirectFileWriter}) holds up neither. A producer that fills whole buffers takes them from
 * {@link #emptyBuffer()} and gives them back with {@link #handOff}, and no byte is copied on the way;
 * {@link #write} copies. The buffers are direct and aligned to {@value #ALIGNMENT} bytes, so that whole ones go to
 * the device as they are. {@link #close()} waits until every byte is written and digested, and throws what the
 * writing threw; it leaves the target open (whoever opened it closes it).
 */
public final class DigestingChannel implements WritableByteChannel {

    /** Size of each of the pipeline's buffers: large sequential writes, a few of them in flight. */
    public static final int BUFFER_BYTES = 4 << 20;
    /** Alignment of the buffers' addresses: a multiple of every file system block size direct I/O may want. */
    public static final int ALIGNMENT = 4096;
    /** One being filled, one being digested, one being written, one spare: each stage can run ahead a little. */
    private static final int BUFFERS = 4;
    /** Put after the last filled buffer: each worker passes it on and ends. */
    private static final ByteBuffer END = ByteBuffer.allocate(0);

    private final WritableByteChannel target;
    private final MessageDigest digest;
    private final BlockingQueue<ByteBuffer> empty = new ArrayBlockingQueue<>(BUFFERS);
    private final BlockingQueue<ByteBuffer> filled = new ArrayBlockingQueue<>(BUFFERS + 1);
    private final BlockingQueue<ByteBuffer> digested = new ArrayBlockingQueue<>(BUFFERS + 1);
    private final Thread digester;
    private final Thread writer;
    private volatile Throwable failure;
    private boolean closed;

    public DigestingChannel(WritableByteChannel target, MessageDigest digest) {
        this.target = target;
        this.digest = digest;
        for (int i = 0; i < BUFFERS; i++) {
            // direct, so that the write system call reads it in place (or the device, with direct I/O)
            empty.add(ByteBuffer.allocateDirect(BUFFER_BYTES + ALIGNMENT).alignedSlice(ALIGNMENT).slice(0, BUFFER_BYTES));
        }
        digester = Thread.ofPlatform().name("output-sha256").daemon().start(this::digest);
        writer = Thread.ofPlatform().name("output-writer").daemon().start(this::write);
    }

    private void digest() {
        try {
            for (ByteBuffer buffer; (buffer = filled.take()) != END; ) {
                if (failure == null) {
                    try {
                        digest.update(buffer.duplicate());
                    } catch (RuntimeException | Error e) {
                        failure = e;
                    }
                }
                digested.put(buffer);
            }
            digested.put(END);
        } catch (InterruptedException e) {
            failure = e;
            digested.add(END); // never full: it holds at most every buffer
        }
    }

    private void write() {
        try {
            for (ByteBuffer buffer; (buffer = digested.take()) != END; ) {
                if (failure == null) {
                    try {
                        while (buffer.hasRemaining()) {
                            target.write(buffer);
                        }
                    } catch (IOException | RuntimeException | Error e) {
                        failure = e;
                    }
                }
                buffer.clear();
                empty.put(buffer);
            }
        } catch (InterruptedException e) {
            failure = e;
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
     * not touch it afterwards.
     */
    public void handOff(ByteBuffer buffer) throws IOException {
        requireOpen();
        buffer.flip();
        try {
            filled.put(buffer);
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

    private void requireOpen() throws IOException {
        if (closed) {
            throw new ClosedChannelException();
        }
        rethrowFailure();
    }

    private void rethrowFailure() throws IOException {
        Throwable cause = failure;
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
        return !closed && target.isOpen();
    }

    /** Waits for the bytes handed over to be digested and written; the target stays open. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        boolean interrupted = false;
        filled.add(END); // never full: it holds every buffer and END
        // the bytes already handed over are written whatever happens to this thread
        for (Thread worker : new Thread[] {digester, writer}) {
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
        rethrowFailure();
    }
}
