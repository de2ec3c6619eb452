package dev.loraflow.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Random corruptions of a valid file must either still open and read in bounds or fail with
 * SafetensorsException; any other exception or error is a reader bug.
 */
class SafetensorsMutationTest {

    private static final long SEED = 0x5AFE_7E45L;
    private static final int MUTATIONS = 4000;
    private static final byte[] JSON_BYTES = "{}[]\":, 0123456789-+.eE\\u_F32BF16I64".getBytes(StandardCharsets.US_ASCII);

    @TempDir
    Path dir;

    @Test
    void corruptedFilesFailOnlyWithSafetensorsException() throws IOException {
        byte[] original = validFile();
        int headerEnd = 8 + (int) ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        System.out.println("SafetensorsMutationTest seed = 0x" + Long.toHexString(SEED));
        var random = new SplittableRandom(SEED);
        int[] outcomes = new int[2];

        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (int i = 0; i < MUTATIONS; i++) {
                byte[] mutant = mutate(original, headerEnd, random);
                // A fresh file each time: truncating a file in place makes ext4 flush it, which is 30x slower.
                Path file = Files.write(dir.resolve("mutant-" + i + ".safetensors"), mutant);
                try (SafetensorsFile st = SafetensorsFile.open(file)) {
                    readEverything(st);
                    outcomes[0]++;
                } catch (SafetensorsException expected) {
                    outcomes[1]++;
                } catch (Throwable unexpected) {
                    fail("mutation " + i + " (seed 0x" + Long.toHexString(SEED) + ") threw " + unexpected
                            + "\nfile: " + HexFormat.of().formatHex(mutant), unexpected);
                }
                Files.delete(file);
            }
        });
        System.out.println("SafetensorsMutationTest: " + outcomes[0] + " still valid, " + outcomes[1] + " rejected");
        assertTrue(outcomes[1] > MUTATIONS / 2, "most corruptions must be detected");
    }

    private static byte[] validFile() throws IOException {
        var random = new SplittableRandom(1);
        float[] values = new float[24];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return SafetensorsBytes.serialize(new SafetensorsWriter()
                .putMetadata("format", "pt")
                .add("base_model.model.h.0.attn.c_attn.lora_A.weight", values, DType.F32, 4, 6)
                .add("half", values, DType.F16, 2, 12)
                .add("brain", values, DType.BF16, 24)
                .addRaw("steps", DType.I64, new byte[16], 2)
                .add("scalar", new float[] {3}, DType.F32));
    }

    /** Copies every byte of every tensor, so an out-of-bounds view cannot go unnoticed. */
    private static void readEverything(SafetensorsFile st) throws SafetensorsException {
        for (TensorInfo tensor : st.tensors()) {
            byte[] bytes = st.rawBytes(tensor.name()).toArray(ValueLayout.JAVA_BYTE);
            if (bytes.length != tensor.byteSize()) {
                throw new AssertionError(tensor + ": read " + bytes.length + " bytes");
            }
            if (tensor.dtype().isReadableAsFloat32() && st.readFloat32(tensor.name()).length != tensor.numel()) {
                throw new AssertionError(tensor + ": wrong element count");
            }
        }
    }

    private static byte[] mutate(byte[] original, int headerEnd, SplittableRandom random) {
        byte[] bytes = original.clone();
        int edits = 1 + random.nextInt(3);
        for (int e = 0; e < edits; e++) {
            bytes = switch (random.nextInt(7)) {
                case 0 -> flipBit(bytes, random.nextInt(bytes.length), random);
                case 1 -> flipBit(bytes, random.nextInt(Math.min(headerEnd, bytes.length)), random);
                case 2 -> overwriteWithJsonByte(bytes, Math.min(headerEnd, bytes.length), random);
                case 3 -> overwriteLength(bytes, random);
                case 4 -> Arrays.copyOf(bytes, random.nextInt(bytes.length + 1));
                case 5 -> insert(bytes, random);
                default -> delete(bytes, Math.min(headerEnd, bytes.length), random);
            };
            if (bytes.length == 0) {
                break;
            }
        }
        return bytes;
    }

    private static byte[] flipBit(byte[] bytes, int index, SplittableRandom random) {
        bytes[index] ^= (byte) (1 << random.nextInt(8));
        return bytes;
    }

    private static byte[] overwriteWithJsonByte(byte[] bytes, int limit, SplittableRandom random) {
        if (limit > 8) {
            int index = 8 + random.nextInt(limit - 8);
            bytes[index] = random.nextInt(8) == 0 ? (byte) random.nextInt(256) : JSON_BYTES[random.nextInt(JSON_BYTES.length)];
        }
        return bytes;
    }

    private static byte[] overwriteLength(byte[] bytes, SplittableRandom random) {
        if (bytes.length < 8) {
            return bytes;
        }
        long length = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        long replacement = switch (random.nextInt(4)) {
            case 0 -> length + random.nextInt(-16, 17);
            case 1 -> random.nextLong();
            case 2 -> random.nextLong(0, bytes.length + 16);
            default -> 100_000_000L + random.nextInt(-2, 3);
        };
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, replacement);
        return bytes;
    }

    private static byte[] insert(byte[] bytes, SplittableRandom random) {
        int at = random.nextInt(bytes.length + 1);
        byte[] inserted = new byte[1 + random.nextInt(8)];
        for (int i = 0; i < inserted.length; i++) {
            inserted[i] = JSON_BYTES[random.nextInt(JSON_BYTES.length)];
        }
        byte[] result = new byte[bytes.length + inserted.length];
        System.arraycopy(bytes, 0, result, 0, at);
        System.arraycopy(inserted, 0, result, at, inserted.length);
        System.arraycopy(bytes, at, result, at + inserted.length, bytes.length - at);
        return result;
    }

    private static byte[] delete(byte[] bytes, int limit, SplittableRandom random) {
        if (limit <= 8) {
            return bytes;
        }
        int at = 8 + random.nextInt(limit - 8);
        int count = Math.min(1 + random.nextInt(4), bytes.length - at);
        byte[] result = new byte[bytes.length - count];
        System.arraycopy(bytes, 0, result, 0, at);
        System.arraycopy(bytes, at + count, result, at, bytes.length - at - count);
        return result;
    }
}
