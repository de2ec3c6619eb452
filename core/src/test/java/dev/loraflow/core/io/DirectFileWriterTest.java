package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DirectFileWriterTest {

    @TempDir
    Path dir;

    /**
     * Aligned blocks go around the page cache where the file system allows it, the rest (a heap buffer, an unaligned
     * address, the last partial block and everything after it) is written buffered: the file is the bytes in order.
     */
    @Test
    void everyWriteLandsInOrderWhateverItsAlignment() throws IOException {
        Path file = Files.createFile(dir.resolve("merged.safetensors"));
        byte[] expected = new byte[16 * DigestingChannel.ALIGNMENT + 1234];
        new Random(11).nextBytes(expected);
        try (DirectFileWriter writer = DirectFileWriter.open(file)) {
            int alignment = writer.alignment();
            ByteBuffer aligned = ByteBuffer.allocateDirect(9 * alignment).alignedSlice(alignment);
            int offset = 0;
            offset += write(writer, aligned.clear(), expected, offset, 4 * alignment);                  // whole blocks
            offset += write(writer, ByteBuffer.allocate(2 * alignment), expected, offset, 2 * alignment); // heap
            offset += write(writer, aligned.clear().position(1).slice(), expected, offset, alignment);   // unaligned address
            offset += write(writer, aligned.clear(), expected, offset, 3 * alignment + 100);             // a partial block
            offset += write(writer, aligned.clear(), expected, offset, expected.length - offset);        // then unaligned
            assertEquals(expected.length, offset);
            writer.force();
        }
        assertArrayEquals(expected, Files.readAllBytes(file));
    }

    private static int write(DirectFileWriter writer, ByteBuffer buffer, byte[] bytes, int offset, int length)
            throws IOException {
        ByteBuffer part = buffer.limit(length).slice();
        part.put(bytes, offset, length).flip();
        assertEquals(length, writer.write(part));
        assertEquals(0, part.remaining());
        return length;
    }
}
