package dev.loraflow.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Each malformed file must fail on open with a SafetensorsException that says what is wrong where. */
class SafetensorsMalformedFileTest {

    private static final String F32_2 = "\"dtype\":\"F32\",\"shape\":[2]";

    @TempDir
    Path dir;

    private static Arguments malformed(String description, byte[] file, String expectedMessagePart) {
        return Arguments.of(description, file, expectedMessagePart);
    }

    private static Arguments malformed(String description, String header, int dataBytes, String expectedMessagePart) {
        return malformed(description, SafetensorsBytes.of(header, new byte[dataBytes]), expectedMessagePart);
    }

    static Stream<Arguments> corpus() {
        byte[] validHeader = "{}      ".getBytes(StandardCharsets.UTF_8);
        byte[] nonUtf8 = "{\"a\u00ff\":{}}".getBytes(StandardCharsets.ISO_8859_1);
        return Stream.of(
                malformed("empty file", new byte[0], ": file has 0 bytes, fewer than the 8-byte header length prefix"),
                malformed("truncated length prefix", new byte[5], ": file has 5 bytes, fewer than the 8-byte header length prefix"),
                malformed("header length over the limit", SafetensorsBytes.of(100_000_001L, validHeader, new byte[0]),
                        ": header length 100000001 exceeds the limit of 100000000 bytes"),
                malformed("header length with the top bit set", SafetensorsBytes.of(-1L, validHeader, new byte[0]),
                        ": header length 18446744073709551615 exceeds the limit"),
                malformed("header length past the end of the file", SafetensorsBytes.of(1000, validHeader, new byte[0]),
                        ": header length 1000 runs past the end of the file (8 bytes follow the length prefix)"),
                malformed("truncated header", SafetensorsBytes.of(9, "{\"a\":".getBytes(StandardCharsets.UTF_8), new byte[0]),
                        ": header length 9 runs past the end of the file"),
                malformed("header not UTF-8", SafetensorsBytes.of(nonUtf8.length, nonUtf8, new byte[0]),
                        ": header is not valid UTF-8"),
                malformed("empty header", "", 0, ": header is not a JSON object (it is empty)"),
                malformed("JSON array header", "[]      ", 0, ": header is not a JSON object (it starts with '[')"),
                malformed("leading whitespace", " {}     ", 0, ": header is not a JSON object (it starts with U+0020)"),
                malformed("JSON string header", "\"x\"", 0, ": header is not a JSON object (it starts with '\"')"),
                malformed("unterminated JSON", "{\"a\":{", 0, ": header is not valid JSON"),
                malformed("trailing garbage", "{}garbage", 0, ": header is not valid JSON: Unrecognized token 'garbage'"),
                malformed("second JSON value", "{} {}", 0, ": header has trailing data after its JSON object at character 3"),
                malformed("NUL padding", "{}\0\0\0\0\0\0", 0, ": header is not valid JSON"),
                malformed("duplicate tensor",
                        "{\"a\":{" + F32_2 + ",\"data_offsets\":[0,8]},\"a\":{" + F32_2 + ",\"data_offsets\":[0,8]}}", 8,
                        ": header is not valid JSON: Duplicate field 'a'"),
                malformed("duplicate field in a tensor",
                        "{\"a\":{" + F32_2 + ",\"dtype\":\"F16\",\"data_offsets\":[0,8]}}", 8,
                        ": header is not valid JSON: Duplicate field 'dtype'"),
                malformed("nesting too deep", "{\"__metadata__\":{\"k\":" + "[".repeat(100) + "]".repeat(100) + "}}", 0,
                        ": header is not valid JSON"),
                malformed("unpaired surrogate in a name", "{\"w\\ud800\":{" + F32_2 + ",\"data_offsets\":[0,8]}}", 8,
                        ": tensor name 'w\ud800' contains an unpaired surrogate escape"),
                malformed("unpaired surrogate in metadata", "{\"__metadata__\":{\"k\":\"\\udc00\"}}", 0,
                        ": __metadata__ value of 'k' contains an unpaired surrogate escape"),
                malformed("entry not an object", "{\"w\":[1,2]}", 0, ": tensor 'w': entry must be an object, found an array"),
                malformed("missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ": tensor 'w': missing 'dtype'"),
                malformed("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, ": tensor 'w': missing 'shape'"),
                malformed("missing data_offsets", "{\"w\":{" + F32_2 + "}}", 8, ": tensor 'w': missing 'data_offsets'"),
                malformed("unknown dtype", "{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                        ": tensor 'w': unknown dtype 'F4'"),
                malformed("lowercase dtype", "{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': unknown dtype 'f32'"),
                malformed("dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': dtype must be a string, found a number"),
                malformed("shape not an array", "{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape must be an array, found a number"),
                malformed("negative dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape[1] must be a non-negative integer, found -2"),
                malformed("fractional dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape[0] must be a non-negative integer, found 2.5"),
                malformed("integral float dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape[0] must be a non-negative integer, found 2.0"),
                malformed("dimension as a string", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape[0] must be a non-negative integer, found a string"),
                malformed("dimension beyond 64 bits",
                        "{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape[0] = 99999999999999999999 does not fit in 64 bits"),
                malformed("element count overflows",
                        "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape [4294967296, 4294967296] of U8 overflows a 64-bit byte count"),
                malformed("byte count overflows",
                        "{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'w': shape [2305843009213693952] of F64 overflows a 64-bit byte count"),
                malformed("one offset", "{\"w\":{" + F32_2 + ",\"data_offsets\":[8]}}", 8,
                        ": tensor 'w': data_offsets must be an array of two integers, found 1 elements"),
                malformed("offsets not an array", "{\"w\":{" + F32_2 + ",\"data_offsets\":\"0-8\"}}", 8,
                        ": tensor 'w': data_offsets must be an array of two integers, found a string"),
                malformed("negative offset", "{\"w\":{" + F32_2 + ",\"data_offsets\":[-8,0]}}", 8,
                        ": tensor 'w': data_offsets[0] must be a non-negative integer, found -8"),
                malformed("fractional offset", "{\"w\":{" + F32_2 + ",\"data_offsets\":[0,8.5]}}", 8,
                        ": tensor 'w': data_offsets[1] must be a non-negative integer, found 8.5"),
                malformed("offsets reversed", "{\"w\":{" + F32_2 + ",\"data_offsets\":[8,0]}}", 8,
                        ": tensor 'w': data_offsets [8, 0] end before they begin"),
                malformed("size does not match shape",
                        "{\"h.0.attn.c_attn.weight\":{\"dtype\":\"F32\",\"shape\":[5,6],\"data_offsets\":[0,100]}}", 100,
                        ": tensor 'h.0.attn.c_attn.weight': data_offsets [0, 100] hold 100 bytes but shape [5, 6] of F32 needs 120"),
                malformed("offsets past the data buffer", "{\"w\":{" + F32_2 + ",\"data_offsets\":[0,8]}}", 4,
                        ": tensor 'w': data_offsets [0, 8] reach past the data buffer, which has 4 bytes"),
                malformed("huge tensor without its bytes",
                        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,17179869184]}}", 16,
                        ": tensor 'w': data_offsets [0, 17179869184] reach past the data buffer, which has 16 bytes"),
                malformed("overlapping tensors",
                        "{\"a\":{" + F32_2 + ",\"data_offsets\":[0,8]},\"b\":{" + F32_2 + ",\"data_offsets\":[4,12]}}", 12,
                        ": tensor 'b': data_offsets [4, 12] overlap tensor 'a', which ends at 8"),
                malformed("two tensors on the same bytes",
                        "{\"a\":{" + F32_2 + ",\"data_offsets\":[0,8]},\"b\":{" + F32_2 + ",\"data_offsets\":[0,8]}}", 8,
                        ": tensor 'b': data_offsets [0, 8] overlap tensor 'a', which ends at 8"),
                malformed("hole between tensors",
                        "{\"a\":{" + F32_2 + ",\"data_offsets\":[0,8]},\"b\":{" + F32_2 + ",\"data_offsets\":[12,20]}}", 20,
                        ": tensor 'b': bytes [8, 12) of the data buffer before it belong to no tensor"),
                malformed("hole at the start", "{\"b\":{" + F32_2 + ",\"data_offsets\":[4,12]}}", 12,
                        ": tensor 'b': bytes [0, 4) of the data buffer before it belong to no tensor"),
                malformed("bytes after the last tensor", "{\"a\":{" + F32_2 + ",\"data_offsets\":[0,8]}}", 9,
                        ": the data buffer has 9 bytes but the tensors cover only the first 8"),
                malformed("data but no tensors", "{}", 3, ": the data buffer has 3 bytes but the tensors cover only the first 0"),
                malformed("metadata not an object", "{\"__metadata__\":[\"pt\"]}", 0,
                        ": __metadata__ must be an object of strings, found an array"),
                malformed("metadata value not a string", "{\"__metadata__\":{\"epoch\":3}}", 0,
                        ": __metadata__ value of 'epoch' must be a string, found a number"),
                malformed("metadata value null", "{\"__metadata__\":{\"epoch\":null}}", 0,
                        ": __metadata__ value of 'epoch' must be a string, found null"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("corpus")
    void rejectsMalformedFile(String description, byte[] contents, String expectedMessagePart) throws IOException {
        Path file = SafetensorsBytes.write(dir, "model.safetensors", contents);
        var e = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(file).close(), description);
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(expectedMessagePart), () -> "message was: " + e.getMessage());
    }

    @Test
    void sizeMismatchMessageNamesFileTensorAndBothSizes() throws IOException {
        Path file = SafetensorsBytes.write(dir, "model.safetensors", SafetensorsBytes.of(
                "{\"h.0.attn.c_attn.weight\":{\"dtype\":\"F32\",\"shape\":[5,6],\"data_offsets\":[0,100]}}", new byte[100]));
        var e = assertThrows(SafetensorsException.class, () -> SafetensorsFile.open(file));
        assertEquals(file + ": tensor 'h.0.attn.c_attn.weight': data_offsets [0, 100] hold 100 bytes but shape [5, 6] of F32 needs 120",
                e.getMessage());
    }

    @Test
    void acceptsWhatTheReferenceAccepts() throws IOException {
        String header = "{\"__metadata__\":null,\"z\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[0,0]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"extra\":{\"dtype\":\"U8\",\"shape\":[1],"
                + "\"data_offsets\":[4,5],\"note\":\"ignored\"}}  \n\t ";
        Path file = SafetensorsBytes.write(dir, "ok.safetensors", SafetensorsBytes.of(header, new byte[] {0, 0, -128, 63, 7}));
        try (var st = SafetensorsFile.open(file)) {
            assertEquals(3, st.tensors().size());
            assertEquals(1.0f, st.readFloat32("w")[0]);
            assertTrue(st.metadata().isEmpty());
        }
    }

    /**
     * A tensor whose bytes are all present but that no Java array can hold: 2^31 F16 elements in a
     * sparse 4 GiB file, so the disk holds only the header.
     */
    @Test
    void readFloat32RefusesTensorsBeyondArrayLimitsBeforeAllocating() throws IOException {
        long elements = 1L << 31;
        String header = "{\"big\":{\"dtype\":\"F16\",\"shape\":[" + elements + "],\"data_offsets\":[0," + 2 * elements + "]}}";
        Path file = SafetensorsBytes.write(dir, "sparse.safetensors", SafetensorsBytes.of(header, new byte[0]));
        try (var raw = new RandomAccessFile(file.toFile(), "rw")) {
            raw.setLength(raw.length() + 2 * elements);
        }
        try (var st = SafetensorsFile.open(file)) {
            assertEquals(2 * elements, st.rawBytes("big").byteSize());
            var e = assertThrows(SafetensorsException.class, () -> st.readFloat32("big"));
            assertEquals(file + ": tensor 'big' has 2147483648 elements, more than one Java array holds (2147483639)",
                    e.getMessage());
        }
    }
}
