package dev.loraflow.onnx;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A protobuf wire-format parser written from the specification, independent of {@link ProtoMessage}, so
 * the tests can re-read what the exporter wrote: each message is its fields in order, each field its
 * number and either a varint or fixed value or the position of its bytes in the buffer.
 */
final class ProtoReader {

    /** One field; for a length-delimited one, {@code offset} and {@code length} locate its bytes. */
    record Field(int number, int wireType, long value, int offset, int length) {}

    /** A message: the buffer and the fields found in [offset, offset + length). */
    record Message(byte[] buffer, List<Field> fields) {

        List<Field> all(int number) {
            return fields.stream().filter(field -> field.number() == number).toList();
        }

        List<Message> messages(int number) {
            return all(number).stream().map(field -> parse(buffer, field.offset(), field.length())).toList();
        }

        Message message(int number) {
            List<Message> found = messages(number);
            if (found.size() != 1) {
                throw new AssertionError("expected one field " + number + ", found " + found.size());
            }
            return found.getFirst();
        }

        List<String> strings(int number) {
            return all(number).stream()
                    .map(field -> new String(buffer, field.offset(), field.length(), StandardCharsets.UTF_8)).toList();
        }

        String string(int number) {
            List<String> found = strings(number);
            return found.isEmpty() ? null : found.getFirst();
        }

        List<Long> varints(int number) {
            return all(number).stream().map(Field::value).toList();
        }

        long varint(int number) {
            List<Long> found = varints(number);
            if (found.size() != 1) {
                throw new AssertionError("expected one varint field " + number + ", found " + found.size());
            }
            return found.getFirst();
        }
    }

    private ProtoReader() {}

    static Message parse(byte[] buffer) {
        return parse(buffer, 0, buffer.length);
    }

    static Message parse(byte[] buffer, int offset, int length) {
        List<Field> fields = new ArrayList<>();
        int[] position = {offset};
        int end = offset + length;
        while (position[0] < end) {
            long key = varint(buffer, position);
            int number = (int) (key >>> 3);
            int wireType = (int) (key & 7);
            switch (wireType) {
                case 0 -> fields.add(new Field(number, wireType, varint(buffer, position), 0, 0));
                case 1 -> {
                    fields.add(new Field(number, wireType, littleEndian(buffer, position[0], 8), 0, 0));
                    position[0] += 8;
                }
                case 2 -> {
                    int size = Math.toIntExact(varint(buffer, position));
                    fields.add(new Field(number, wireType, 0, position[0], size));
                    position[0] += size;
                }
                case 5 -> {
                    fields.add(new Field(number, wireType, littleEndian(buffer, position[0], 4), 0, 0));
                    position[0] += 4;
                }
                default -> throw new AssertionError("wire type " + wireType + " at byte " + position[0]);
            }
        }
        if (position[0] != end) {
            throw new AssertionError("the last field runs past the message's end");
        }
        return new Message(buffer, fields);
    }

    private static long varint(byte[] buffer, int[] position) {
        long value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            byte b = buffer[position[0]++];
            value |= (long) (b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                return value;
            }
        }
        throw new AssertionError("varint longer than 10 bytes");
    }

    private static long littleEndian(byte[] buffer, int offset, int bytes) {
        long value = 0;
        for (int i = 0; i < bytes; i++) {
            value |= (long) (buffer[offset + i] & 0xFF) << (8 * i);
        }
        return value;
    }
}
