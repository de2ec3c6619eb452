package dev.loraflow.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.security.MessageDigest;

/** A channel that digests every byte written through it: a file's SHA-256 in the pass that writes it. */
public final class DigestingChannel implements WritableByteChannel {

    private final WritableByteChannel target;
    private final MessageDigest digest;

    public DigestingChannel(WritableByteChannel target, MessageDigest digest) {
        this.target = target;
        this.digest = digest;
    }

    @Override
    public int write(ByteBuffer source) throws IOException {
        ByteBuffer written = source.duplicate();
        int count = target.write(source);
        written.limit(written.position() + count);
        digest.update(written);
        return count;
    }

    @Override
    public boolean isOpen() {
        return target.isOpen();
    }

    /** Leaves the target open: whoever opened it closes it. */
    @Override
    public void close() {}
}
