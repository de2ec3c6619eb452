package dev.loraflow.onnx;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A protocol-buffers message under construction, for the handful of ONNX messages the exporter writes.
 * Fields are appended in the order given and serialised in that order (proto2 parsers accept any order).
 *
 * <p>Nested messages and {@link TensorPayload}s are kept as references, not encoded, until
 * {@link #writeTo}: a payload's bytes are produced once, streamed straight to the output, so a model
 * of several hundred megabytes is never copied into a byte array.
 */
final class ProtoMessage {

    private static final int VARINT = 0;
    private static final int FIXED32 = 5;
    private static final int LENGTH_DELIMITED = 2;

    /** Encoded scalar fields, nested messages and payloads, in field order. */
    private final List<Object> parts = new ArrayList<>();
    private Bytes pending = new Bytes();
    private long cachedSize = -1;

    ProtoMessage int64(int field, long value) {
        pending.tag(field, VARINT).varint(value);
        return this;
    }

    /** A repeated int64 field, one tag per element (proto2's unpacked default). */
    ProtoMessage int64s(int field, long... values) {
        for (long value : values) {
            int64(field, value);
        }
        return this;
    }

    ProtoMessage float32(int field, float value) {
        pending.tag(field, FIXED32).fixed32(Float.floatToRawIntBits(value));
        return this;
    }

    ProtoMessage string(int field, String value) {
        return bytes(field, value.getBytes(StandardCharsets.UTF_8));
    }

    ProtoMessage bytes(int field, byte[] value) {
        pending.tag(field, LENGTH_DELIMITED).varint(value.length).append(value);
        return this;
    }

    ProtoMessage message(int field, ProtoMessage message) {
        pending.tag(field, LENGTH_DELIMITED).varint(message.size());
        flushPending();
        parts.add(message);
        return this;
    }

    /** A bytes field whose content the payload writes when the message is written. */
    ProtoMessage payload(int field, TensorPayload payload) {
        pending.tag(field, LENGTH_DELIMITED).varint(payload.byteCount());
        flushPending();
        parts.add(payload);
        return this;
    }

    /** The encoded length in bytes, computed once: append nothing after asking. */
    long size() {
        if (cachedSize < 0) {
            flushPending();
            long size = 0;
            for (Object part : parts) {
                size += switch (part) {
                    case byte[] encoded -> encoded.length;
                    case ProtoMessage nested -> nested.size();
                    case TensorPayload payload -> payload.byteCount();
                    default -> throw new IllegalStateException("unknown part " + part);
                };
            }
            cachedSize = size;
        }
        return cachedSize;
    }

    void writeTo(OutputStream out) throws IOException {
        flushPending();
        for (Object part : parts) {
            switch (part) {
                case byte[] encoded -> out.write(encoded);
                case ProtoMessage nested -> nested.writeTo(out);
                case TensorPayload payload -> payload.writeTo(out);
                default -> throw new IllegalStateException("unknown part " + part);
            }
        }
    }

    private void flushPending() {
        if (pending.length > 0) {
            if (cachedSize >= 0) {
                throw new IllegalStateException("a field was appended after the message's size was taken");
            }
            parts.add(pending.toArray());
            pending = new Bytes();
        }
    }

    /** A growable byte buffer with the wire-format primitives. */
    private static final class Bytes {
        private byte[] buffer = new byte[32];
        private int length;

        Bytes tag(int field, int wireType) {
            return varint(((long) field << 3) | wireType);
        }

        /** Base-128 varint; a negative int64 takes ten bytes, as protobuf encodes it. */
        Bytes varint(long value) {
            while ((value & ~0x7FL) != 0) {
                put((byte) ((value & 0x7F) | 0x80));
                value >>>= 7;
            }
            put((byte) value);
            return this;
        }

        Bytes fixed32(int value) {
            for (int shift = 0; shift < 32; shift += 8) {
                put((byte) (value >>> shift));
            }
            return this;
        }

        Bytes append(byte[] bytes) {
            ensure(bytes.length);
            System.arraycopy(bytes, 0, buffer, length, bytes.length);
            length += bytes.length;
            return this;
        }

        private void put(byte b) {
            ensure(1);
            buffer[length++] = b;
        }

        private void ensure(int extra) {
            if (length + extra > buffer.length) {
                buffer = Arrays.copyOf(buffer, Math.max(2 * buffer.length, length + extra));
            }
        }

        byte[] toArray() {
            return Arrays.copyOf(buffer, length);
        }
    }
}
