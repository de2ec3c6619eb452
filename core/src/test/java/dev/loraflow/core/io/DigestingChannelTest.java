package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.io.InterruptedIOException;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

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

    /**
     * Several writes are in flight at once (each of the first ones waits until all writers are inside a write), the
     * readers handed over with each buffer see its bytes before it is reused, and the file and digest are the bytes in
     * order, as one thread writing them front to back would leave them.
     */
    @ParameterizedTest
    @EnumSource(LargeFileWriter.Route.class)
    void writesInFlightAtOnceLeaveTheBytesOfASingleWriter(LargeFileWriter.Route route)
            throws IOException, InterruptedException {
        byte[] expected = new byte[4 * DigestingChannel.WRITERS * DigestingChannel.BUFFER_BYTES + 777];
        new Random(13).nextBytes(expected);
        Path file = Files.createFile(dir.resolve("merged.safetensors"));
        CountDownLatch inFlight = new CountDownLatch(DigestingChannel.WRITERS);
        AtomicBoolean allInFlight = new AtomicBoolean(true);
        MessageDigest digest = Sha256.newDigest();
        MessageDigest readAlong = Sha256.newDigest();
        try (LargeFileWriter writer = LargeFileWriter.open(file, route, LargeFileWriter.SYNC_INTERVAL_BYTES)) {
            DigestingChannel.PositionalTarget target = (source, position) -> {
                if (inFlight.getCount() > 0) {
                    inFlight.countDown();
                    try {
                        allInFlight.compareAndSet(true, inFlight.await(30, TimeUnit.SECONDS));
                    } catch (InterruptedException e) {
                        throw new InterruptedIOException();
                    }
                }
                return writer.write(source, position);
            };
            try (DigestingChannel channel = new DigestingChannel(target, digest)) {
                for (int offset = 0; offset < expected.length; ) {
                    ByteBuffer buffer = channel.emptyBuffer();
                    int n = Math.min(buffer.remaining(), expected.length - offset);
                    buffer.put(expected, offset, n);
                    ByteBuffer filled = buffer.slice(0, n);
                    channel.handOff(buffer, List.of(() -> readAlong.update(filled.duplicate())));
                    offset += n;
                }
            }
            writer.force();
        }
        assertTrue(allInFlight.get(), DigestingChannel.WRITERS + " writes were never in flight at once");
        assertArrayEquals(expected, Files.readAllBytes(file));
        assertEquals(Sha256.of(file), Sha256.hex(digest));
        assertEquals(Sha256.of(file), Sha256.hex(readAlong), "a reader saw a buffer after it was reused");
    }

    /**
     * One writer's I/O error (the second buffer's write; the others succeed) stops the producer, is what closing
     * throws, saying which bytes failed, and the atomically written file is not left behind.
     */
    @Test
    void anIoErrorInOneWriterFailsTheWholeFileAndLeavesNothing() throws IOException {
        Path target = dir.resolve("out").resolve("merged.safetensors");
        Files.createDirectories(target.getParent());
        IOException failure = assertThrows(IOException.class, () -> AtomicFiles.writeLarge(target, 1L << 40, file -> {
            DigestingChannel.PositionalTarget failingSecond = (source, position) -> {
                if (position == DigestingChannel.BUFFER_BYTES) {
                    throw new IOException("No space left on device");
                }
                return file.write(source, position);
            };
            try (DigestingChannel channel = new DigestingChannel(failingSecond, Sha256.newDigest())) {
                // the producer is stopped by the failure, long before it has handed over this much
                for (long handedOver = 0; handedOver < 1L << 40; handedOver += DigestingChannel.BUFFER_BYTES) {
                    ByteBuffer buffer = channel.emptyBuffer();
                    channel.handOff(buffer.position(buffer.limit()));
                }
            }
        }));
        assertEquals("writing bytes 4194304 to 8388608 of the file failed: No space left on device", failure.getMessage());
        try (Stream<Path> left = Files.list(target.getParent())) {
            assertEquals(List.of(), left.toList());
        }
    }
}
