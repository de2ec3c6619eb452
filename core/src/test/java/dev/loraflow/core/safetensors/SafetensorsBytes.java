package dev.loraflow.core.safetensors;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Hand-assembles safetensors bytes, so tests can build files no writer would produce. */
final class SafetensorsBytes {

    private SafetensorsBytes() {}

    /** Length prefix computed from {@code header}, then the header, then {@code data}. */
    static byte[] of(String header, byte[] data) {
        byte[] headerBytes = header.getBytes(StandardCharsets.UTF_8);
        return of(headerBytes.length, headerBytes, data);
    }

    /** {@code declaredLength} as the prefix whatever the header's real length. */
    static byte[] of(long declaredLength, byte[] header, byte[] data) {
        ByteBuffer buffer = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.putLong(declaredLength).put(header).put(data);
        return buffer.array();
    }

    static Path write(Path directory, String name, byte[] bytes) throws IOException {
        Path file = directory.resolve(name);
        Files.write(file, bytes);
        return file;
    }

    static byte[] serialize(SafetensorsWriter writer) throws IOException {
        var out = new ByteArrayOutputStream();
        writer.writeTo(Channels.newChannel(out));
        return out.toByteArray();
    }

    static byte[] floatsLe(float... values) {
        ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float value : values) {
            buffer.putFloat(value);
        }
        return buffer.array();
    }

    /** The header text of a serialized file. */
    static String header(byte[] file) {
        long length = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        return new String(file, 8, (int) length, StandardCharsets.UTF_8);
    }
}
