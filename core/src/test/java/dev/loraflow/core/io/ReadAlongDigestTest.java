package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReadAlongDigestTest {

    @TempDir
    Path dir;

    private Path file(int bytes) throws IOException {
        byte[] content = new byte[bytes];
        new Random(3).nextBytes(content);
        return Files.write(dir.resolve("weights.bin"), content);
    }

    /** What a pass read at {@code offset}, as it hands it over: a buffer whose position is not 0. */
    private static ByteBuffer read(Path file, long offset, int length) throws IOException {
        byte[] all = Files.readAllBytes(file);
        ByteBuffer buffer = ByteBuffer.allocateDirect(length + 7).position(7);
        buffer.put(all, (int) offset, length).position(7);
        return buffer;
    }

    @Test
    void readsInOrderGiveTheFilesDigest() throws IOException {
        Path file = file(3 << 20);
        ReadAlongDigest digest = new ReadAlongDigest(file);
        for (long offset = 0; offset < Files.size(file); offset += 1 << 20) {
            ByteBuffer bytes = read(file, offset, 1 << 20);
            digest.read(offset, bytes);
            assertEquals(7, bytes.position(), "the caller's buffer is left as it was");
        }
        assertEquals(Sha256.of(file), digest.finish());
    }

    @Test
    void gapsRereadsOverlapsAndAnUnreadTailAreAllCounted() throws IOException {
        Path file = file(5_000_003);
        ReadAlongDigest digest = new ReadAlongDigest(file);
        digest.read(1000, read(file, 1000, 20_000));         // a header never handed over: read here
        digest.read(500_000, read(file, 500_000, 100_000));  // a skipped tensor: read here
        digest.read(200_000, read(file, 200_000, 50_000));   // out of order: already hashed, not again
        digest.read(550_000, read(file, 550_000, 100_000));  // overlapping what was hashed
        assertEquals(Sha256.of(file), digest.finish());      // the rest read at the end
    }

    @Test
    void aFileNeverReadAlongIsHashedWhole() throws IOException {
        Path file = file(123_457);
        assertEquals(Sha256.of(file), new ReadAlongDigest(file).finish());
    }
}
