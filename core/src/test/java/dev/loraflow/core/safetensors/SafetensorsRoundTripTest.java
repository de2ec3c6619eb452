package dev.loraflow.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsRoundTripTest {

    @TempDir
    Path dir;

    private static float[] randomFloats(long seed, int n) {
        var random = new SplittableRandom(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    @Test
    void f32RoundTripsExactly() throws IOException {
        float[] values = randomFloats(1, 6 * 7);
        values[0] = Float.NaN;
        values[1] = Float.NEGATIVE_INFINITY;
        values[2] = Float.MIN_VALUE;
        values[3] = -0.0f;
        Path file = dir.resolve("f32.safetensors");
        new SafetensorsWriter().add("w", values, DType.F32, 6, 7).write(file);
        try (var st = SafetensorsFile.open(file)) {
            TensorInfo info = st.info("w");
            assertEquals(DType.F32, info.dtype());
            assertArrayEquals(new long[] {6, 7}, info.shape());
            assertEquals(42, info.numel());
            float[] read = st.readFloat32("w");
            for (int i = 0; i < values.length; i++) {
                assertEquals(Float.floatToRawIntBits(values[i]), Float.floatToRawIntBits(read[i]), "element " + i);
            }
        }
    }

    @Test
    void f16AndBf16RoundTripWithinTheirRounding() throws IOException {
        float[] values = randomFloats(2, 1000);
        Path file = dir.resolve("half.safetensors");
        new SafetensorsWriter()
                .add("as_f16", values, DType.F16, 10, 100)
                .add("as_bf16", values, DType.BF16, 1000)
                .write(file);
        try (var st = SafetensorsFile.open(file)) {
            float[] f16 = st.readFloat32("as_f16");
            float[] bf16 = st.readFloat32("as_bf16");
            assertEquals(2 * 1000, st.info("as_f16").byteSize());
            for (int i = 0; i < values.length; i++) {
                assertEquals(HalfFloats.fromF16(HalfFloats.toF16(values[i])), f16[i]);
                assertEquals(HalfFloats.fromBf16(HalfFloats.toBf16(values[i])), bf16[i]);
                assertTrue(Math.abs(f16[i] - values[i]) <= Math.max(Math.abs(values[i]) * 0x1p-11f, 0x1p-25f));
                assertTrue(Math.abs(bf16[i] - values[i]) <= Math.abs(values[i]) * 0x1p-8f);
            }
        }
    }

    @Test
    void representableValuesRoundTripExactlyInEveryFloatType() throws IOException {
        float[] values = {0f, -0f, 1f, -2f, 0.5f, 1.5f, 3.0f, -256f, 0.0078125f, Float.POSITIVE_INFINITY};
        Path file = dir.resolve("exact.safetensors");
        var writer = new SafetensorsWriter();
        for (DType dtype : List.of(DType.F32, DType.F16, DType.BF16)) {
            writer.add(dtype.name(), values, dtype, values.length);
        }
        writer.write(file);
        try (var st = SafetensorsFile.open(file)) {
            for (DType dtype : List.of(DType.F32, DType.F16, DType.BF16)) {
                assertArrayEquals(values, st.readFloat32(dtype.name()), dtype.name());
            }
        }
    }

    @Test
    void f64IsReadAsFloat32() throws IOException {
        byte[] bytes = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(0.1).putDouble(-3.5).array();
        Path file = dir.resolve("f64.safetensors");
        new SafetensorsWriter().addRaw("d", DType.F64, bytes, 2).write(file);
        try (var st = SafetensorsFile.open(file)) {
            assertArrayEquals(new float[] {0.1f, -3.5f}, st.readFloat32("d"));
        }
    }

    /** The reference implementation's own serialization tests (safetensors/src/tensor.rs), byte for byte. */
    @Test
    void bytesMatchTheReferenceWriter() throws IOException {
        float[] data = {0, 1, 2, 3, 4, 5};
        byte[] expectedData = SafetensorsBytes.floatsLe(data);

        byte[] attn0 = SafetensorsBytes.serialize(new SafetensorsWriter().add("attn.0", data, DType.F32, 1, 2, 3));
        assertArrayEquals(
                SafetensorsBytes.of("{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}", expectedData),
                attn0);
        assertEquals(64, attn0[0]);

        byte[] forcedAlignment = SafetensorsBytes.serialize(new SafetensorsWriter().add("attn0", data, DType.F32, 1, 1, 2, 3));
        assertArrayEquals(
                SafetensorsBytes.of("{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ", expectedData),
                forcedAlignment);
        assertEquals(72, forcedAlignment[0]);

        assertArrayEquals(new byte[] {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '},
                SafetensorsBytes.serialize(new SafetensorsWriter()));
        assertArrayEquals(SafetensorsBytes.of("{\"__metadata__\":{\"framework\":\"pt\"}}     ", new byte[0]),
                SafetensorsBytes.serialize(new SafetensorsWriter().putMetadata("framework", "pt")));
    }

    @Test
    void headerIsPaddedWithSpacesToAMultipleOfEight() throws IOException {
        for (int nameLength = 1; nameLength <= 16; nameLength++) {
            String name = "t".repeat(nameLength);
            byte[] file = SafetensorsBytes.serialize(new SafetensorsWriter().add(name, new float[] {1}, DType.F32, 1));
            String header = SafetensorsBytes.header(file);
            String content = header.stripTrailing();
            assertEquals(0, header.length() % 8, name);
            assertTrue(content.endsWith("}}"), header);
            assertTrue(header.length() - content.length() < 8, "no more padding than needed");
            assertEquals(" ".repeat(header.length() - content.length()), header.substring(content.length()));
        }
    }

    @Test
    void tensorsAreLaidOutByDescendingDtypeThenName() throws IOException {
        var writer = new SafetensorsWriter()
                .add("b", new float[] {1}, DType.F32, 1)
                .add("a", new float[] {1}, DType.F16, 1)
                .add("c", new float[] {1}, DType.BF16, 1)
                .add("d", new float[] {1}, DType.F32, 1)
                .addRaw("e", DType.I64, new byte[8], 1)
                .addRaw("f", DType.U8, new byte[3], 3)
                .addRaw("g", DType.F64, new byte[8], 1);
        byte[] bytes = SafetensorsBytes.serialize(writer);
        String header = SafetensorsBytes.header(bytes);
        List<String> expected = List.of("e", "g", "b", "d", "c", "a", "f");
        int previous = -1;
        for (String name : expected) {
            int at = header.indexOf("\"" + name + "\":");
            assertTrue(at > previous, name + " out of order in " + header);
            previous = at;
        }
        Path file = SafetensorsBytes.write(dir, "order.safetensors", bytes);
        try (var st = SafetensorsFile.open(file)) {
            assertEquals(expected, st.tensorNames(), "tensors() is file order");
            assertEquals(0, st.info("e").begin());
            assertEquals(8, st.info("g").begin());
            assertEquals(DType.U8, st.info("f").dtype());
        }
    }

    @Test
    void metadataRoundTrips() throws IOException {
        Map<String, String> metadata = Map.of(
                "format", "pt",
                "quote\"and\\backslash", "line\nbreak\ttab\u0001control",
                "unicode", "größe 🚀 模型",
                "empty", "");
        var writer = new SafetensorsWriter();
        metadata.forEach(writer::putMetadata);
        writer.add("x", new float[] {1, 2}, DType.F32, 2);
        Path file = dir.resolve("meta.safetensors");
        writer.write(file);
        String header = SafetensorsBytes.header(Files.readAllBytes(file));
        assertTrue(header.startsWith("{\"__metadata__\":{\"empty\":\"\",\"format\":\"pt\","), header);
        assertTrue(header.contains("\\u0001"), "control characters are escaped as serde_json does");
        try (var st = SafetensorsFile.open(file)) {
            assertEquals(metadata, st.metadata());
        }
    }

    @Test
    void scalarsAndEmptyTensorsRoundTrip() throws IOException {
        Path file = dir.resolve("edge.safetensors");
        new SafetensorsWriter()
                .add("scalar", new float[] {42}, DType.F32)
                .add("empty", new float[0], DType.BF16, 0, 5)
                .add("also_empty", new float[0], DType.F16, 3, 0)
                .write(file);
        try (var st = SafetensorsFile.open(file)) {
            assertEquals(0, st.info("scalar").rank());
            assertEquals(1, st.info("scalar").numel());
            assertArrayEquals(new float[] {42}, st.readFloat32("scalar"));
            assertEquals(0, st.readFloat32("empty").length);
            assertEquals(0, st.rawBytes("also_empty").byteSize());
            assertEquals(Map.of(), st.metadata());
        }
    }

    @Test
    void rawBytesAreTheStoredLittleEndianBytes() throws IOException {
        byte[] raw = {1, 0, 0, 0, -1, -1, -1, -1};
        Path file = dir.resolve("raw.safetensors");
        new SafetensorsWriter().addRaw("ints", DType.I32, raw, 2).write(file);
        try (var st = SafetensorsFile.open(file)) {
            assertArrayEquals(raw, st.rawBytes("ints").toArray(ValueLayout.JAVA_BYTE));
            var e = assertThrows(SafetensorsException.class, () -> st.readFloat32("ints"));
            assertTrue(e.getMessage().endsWith("tensor 'ints' has dtype I32, which is not a float type (F16, BF16, F32 or F64)"),
                    e.getMessage());
        }
    }

    @Test
    void writeReplacesAtomicallyAndLeavesNoTemporaryFiles() throws IOException {
        Path file = dir.resolve("model.safetensors");
        new SafetensorsWriter().add("old", new float[] {1}, DType.F32, 1).write(file);
        new SafetensorsWriter().add("new", new float[] {2}, DType.F32, 1).write(file);
        try (var st = SafetensorsFile.open(file)) {
            assertEquals(List.of("new"), st.tensorNames());
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    @Test
    void writerRejectsInconsistentInput() {
        var writer = new SafetensorsWriter().add("w", new float[6], DType.F32, 2, 3);
        assertThrows(IllegalArgumentException.class, () -> writer.add("w", new float[1], DType.F32, 1), "duplicate");
        assertThrows(IllegalArgumentException.class, () -> writer.add("x", new float[5], DType.F32, 2, 3), "count");
        assertThrows(IllegalArgumentException.class, () -> writer.add("x", new float[1], DType.I32, 1), "dtype");
        assertThrows(IllegalArgumentException.class, () -> writer.add("__metadata__", new float[1], DType.F32, 1));
        assertThrows(IllegalArgumentException.class, () -> writer.addRaw("x", DType.I64, new byte[4], 1));
        assertThrows(IllegalArgumentException.class, () -> writer.add("x", new float[0], DType.F32, -1, 0));
        assertThrows(IllegalArgumentException.class, () -> writer.add("bad\uD800", new float[1], DType.F32, 1));
    }

    @Test
    void unknownTensorIsAClearError() throws IOException {
        Path file = dir.resolve("one.safetensors");
        new SafetensorsWriter().add("w", new float[1], DType.F32, 1).write(file);
        try (var st = SafetensorsFile.open(file)) {
            var e = assertThrows(SafetensorsException.class, () -> st.info("nope"));
            assertTrue(e.getMessage().endsWith("one.safetensors: no tensor named 'nope' (the file has 1 tensors)"), e.getMessage());
        }
    }
}
