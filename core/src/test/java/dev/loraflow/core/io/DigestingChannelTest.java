package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DigestingChannelTest {

    @TempDir
    Path dir;

    @Test
    void bytesHandedOverAndWrittenArriveInOrderAndTheDigestIsTheFiles() throws IOException {
        byte[] expected = new byte[3 * DigestingChannel.BUFFER_BYTES + 12345];
        new Random(7).nextBytes(expected);
        Path file = dir.resolve("out.bin");
        MessageDigest digest = Sha256.newDigest();
        try (FileChannel target = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            try (DigestingChannel channel = new DigestingChannel(target::write, digest)) {
                // a part larger than a buffer through write, which copies; the rest in whole handed-over buffers
                int offset = DigestingChannel.BUFFER_BYTES + 100;
                assertEquals(offset, channel.write(ByteBuffer.wrap(expected, 0, offset)));
                while (offset < expected.length) {
                    ByteBuffer buffer = channel.emptyBuffer();
                    int n = Math.min(buffer.remaining(), expected.length - offset);
                    buffer.put(expected, offset, n);
                    offset += n;
                    channel.handOff(buffer);
                }
            }
        }
        assertArrayEquals(expected, Files.readAllBytes(file));
        assertEquals(Sha256.of(file), Sha256.hex(digest));
    }

    @Test
    void aFailedWriteEndsTheStreamWithItsException() throws IOException {
        DigestingChannel.PositionalTarget full = (source, position) -> {
            throw new IOException("No space left on device");
        };
        DigestingChannel channel = new DigestingChannel(full, Sha256.newDigest());
        channel.write(ByteBuffer.wrap(new byte[100]));
        IOException failure = assertThrows(IOException.class, channel::close);
        assertEquals("writing bytes 0 to 100 of the file failed: No space left on device", failure.getMessage());
    }
}
