package dev.loraflow.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;

/**
 * The SHA-256 of a file taken from the reads that another pass makes of it anyway, so that a pass reading the
 * file front to back (a merge reading its base in the order it writes its output) hashes it without reading it
 * twice. The pass hands each read over with {@link #read}; bytes it skips are read here when it moves past them,
 * bytes it reads again are not hashed again, and {@link #finish()} reads what it never reached: the digest is the
 * file's whatever order the pass reads in, at the cost of a second read only of what it read out of order.
 */
public final class ReadAlongDigest {

    private static final int GAP_BUFFER_BYTES = 1 << 20;

    private final Path file;
    private final MessageDigest digest = Sha256.newDigest();
    /** Bytes [0, digested) of the file are in the digest. */
    private long digested;

    public ReadAlongDigest(Path file) {
        this.file = file;
    }

    public Path file() {
        return file;
    }

    /**
     * Takes the bytes just read from the file at {@code offset}: {@code bytes} from its position to its limit,
     * which are left as they are (the caller may change them afterwards).
     */
    public void read(long offset, ByteBuffer bytes) throws IOException {
        long end = offset + bytes.remaining();
        if (end <= digested) {
            return;
        }
        if (offset > digested) {
            digestFromFile(offset);
        }
        int skip = (int) (digested - offset);
        digest.update(bytes.slice(bytes.position() + skip, bytes.remaining() - skip));
        digested = end;
    }

    /** The file's SHA-256 as lower-case hex, once what was not read along is read. */
    public String finish() throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            digestFrom(channel, channel.size());
        }
        return Sha256.hex(digest);
    }

    private void digestFromFile(long end) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            digestFrom(channel, end);
        }
    }

    private void digestFrom(FileChannel channel, long end) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocateDirect((int) Math.min(GAP_BUFFER_BYTES, Math.max(0, end - digested)));
        while (digested < end) {
            buffer.clear().limit((int) Math.min(buffer.capacity(), end - digested));
            int n = channel.read(buffer, digested);
            if (n < 0) {
                throw new IOException(file + ": ended at byte " + digested + " while being hashed");
            }
            digest.update(buffer.flip());
            digested += n;
        }
    }
}
