package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class LargeFileWriterTest {

    @TempDir
    Path dir;

    /** A 1.1 B model's 2.2 GB goes through the page cache of a 24 GB machine, an 8 B model's 16 GB around it. */
    @Test
    void aFileOfAtMostAQuarterOfTheMemoryAvailableGoesThroughThePageCache() {
        long available = 23_000_000_000L;
        assertEquals(LargeFileWriter.Route.PAGE_CACHE, LargeFileWriter.routeFor(2_200_000_000L, available));
        assertEquals(LargeFileWriter.Route.PAGE_CACHE, LargeFileWriter.routeFor(available / 4, available));
        assertEquals(LargeFileWriter.Route.DIRECT, LargeFileWriter.routeFor(available / 4 + 1, available));
        assertEquals(LargeFileWriter.Route.DIRECT, LargeFileWriter.routeFor(16_000_000_000L, available));
    }

    /**
     * Writes larger than a piece, smaller ones, heap and direct buffers, appended and at positions from several threads
     * at once: the file is the bytes in order either way, and through the page cache every interval's end forced the
     * bytes once.
     */
    @ParameterizedTest
    @EnumSource(LargeFileWriter.Route.class)
    void writesOfAnySizeFromSeveralThreadsLandInOrder(LargeFileWriter.Route route) throws Exception {
        byte[] expected = new byte[7 * LargeFileWriter.PIECE_BYTES + 1234];
        new Random(11).nextBytes(expected);
        long interval = 3L * LargeFileWriter.PIECE_BYTES; // more than any one write: each end is crossed by one
        Path file = Files.createFile(dir.resolve("merged.safetensors"));
        try (LargeFileWriter writer = LargeFileWriter.open(file, route, interval)) {
            // appended: a heap buffer of a piece and a half, then a direct one of a few bytes
            int offset = 0;
            offset += writer.write(ByteBuffer.wrap(expected, 0, LargeFileWriter.PIECE_BYTES * 3 / 2));
            offset += writer.write(ByteBuffer.allocateDirect(10).put(expected, offset, 10).flip());
            // the rest at positions, in parts of three sizes from three threads, in aligned direct buffers
            List<int[]> parts = new ArrayList<>();
            int[] sizes = {LargeFileWriter.PIECE_BYTES * 2 + 5, 4096, 100_000};
            for (int i = 0; offset < expected.length; i++) {
                int n = Math.min(sizes[i % sizes.length], expected.length - offset);
                parts.add(new int[] {offset, n});
                offset += n;
            }
            ExecutorService threads = Executors.newFixedThreadPool(3);
            try {
                List<Future<Integer>> written = new ArrayList<>();
                for (int[] part : parts) {
                    written.add(threads.submit(() -> writer.write(alignedDirect(part[1]).put(expected, part[0], part[1])
                            .flip(), part[0])));
                }
                for (int i = 0; i < parts.size(); i++) {
                    assertEquals(parts.get(i)[1], written.get(i).get());
                }
            } finally {
                threads.shutdown();
            }
            writer.force();
            assertEquals(route == LargeFileWriter.Route.PAGE_CACHE ? expected.length / interval : 0, writer.syncs());
        }
        assertArrayEquals(expected, Files.readAllBytes(file));
    }

    /**
     * Direct: aligned blocks go around the page cache where the file system allows it, the rest (a heap buffer, an
     * unaligned address, the last partial block and everything after it) is written buffered: the file is the bytes in
     * order.
     */
    @Test
    void directWritesLandInOrderWhateverTheirAlignment() throws IOException {
        Path file = Files.createFile(dir.resolve("merged.safetensors"));
        byte[] expected = new byte[16 * DigestingChannel.ALIGNMENT + 1234];
        new Random(11).nextBytes(expected);
        try (LargeFileWriter writer = LargeFileWriter.open(file, LargeFileWriter.Route.DIRECT, 1L << 30)) {
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

    private static ByteBuffer alignedDirect(int bytes) {
        return ByteBuffer.allocateDirect(bytes + 2 * DigestingChannel.ALIGNMENT).alignedSlice(DigestingChannel.ALIGNMENT)
                .limit(bytes).slice();
    }

    private static int write(LargeFileWriter writer, ByteBuffer buffer, byte[] bytes, int offset, int length)
            throws IOException {
        ByteBuffer part = buffer.limit(length).slice();
        part.put(bytes, offset, length).flip();
        assertEquals(length, writer.write(part));
        assertEquals(0, part.remaining());
        return length;
    }
}
