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

class WritebackFileWriterTest {

    @TempDir
    Path dir;

    /**
     * Writes larger than a piece, smaller ones, heap and direct buffers, appended and at positions from several threads
     * at once: the file is the bytes in order, and every interval's end forced the bytes once.
     */
    @Test
    void writesOfAnySizeFromSeveralThreadsLandInOrderAndEachIntervalIsForced() throws Exception {
        byte[] expected = new byte[7 * WritebackFileWriter.PIECE_BYTES + 1234];
        new Random(11).nextBytes(expected);
        long interval = 3L * WritebackFileWriter.PIECE_BYTES; // more than any one write: each end is crossed by one
        Path file = Files.createFile(dir.resolve("merged.safetensors"));
        try (WritebackFileWriter writer = WritebackFileWriter.open(file, interval)) {
            // appended: a heap buffer of a piece and a half, then a direct one of a few bytes
            int offset = 0;
            offset += writer.write(ByteBuffer.wrap(expected, 0, WritebackFileWriter.PIECE_BYTES * 3 / 2));
            offset += writer.write(ByteBuffer.allocateDirect(10).put(expected, offset, 10).flip());
            // the rest at positions, in parts of three sizes from three threads
            List<int[]> parts = new ArrayList<>();
            int[] sizes = {WritebackFileWriter.PIECE_BYTES * 2 + 5, 4096, 100_000};
            for (int i = 0; offset < expected.length; i++) {
                int n = Math.min(sizes[i % sizes.length], expected.length - offset);
                parts.add(new int[] {offset, n});
                offset += n;
            }
            ExecutorService threads = Executors.newFixedThreadPool(3);
            try {
                List<Future<Integer>> written = new ArrayList<>();
                for (int[] part : parts) {
                    written.add(threads.submit(() -> writer.write(
                            ByteBuffer.allocateDirect(part[1]).put(expected, part[0], part[1]).flip(), part[0])));
                }
                for (int i = 0; i < parts.size(); i++) {
                    assertEquals(parts.get(i)[1], written.get(i).get());
                }
            } finally {
                threads.shutdown();
            }
            writer.force();
            assertEquals(expected.length / interval, writer.syncs());
        }
        assertArrayEquals(expected, Files.readAllBytes(file));
    }
}
