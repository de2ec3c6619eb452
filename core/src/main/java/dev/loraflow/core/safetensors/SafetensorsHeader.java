package dev.loraflow.core.safetensors;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Parses and validates the header of a safetensors file held in memory. Every defect the reference
 * reader rejects is rejected here too, each with its own message, before any tensor is touched.
 */
final class SafetensorsHeader {

    /** The reference implementation's MAX_HEADER_SIZE. */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    private static final ValueLayout.OfLong U64_LE =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // A valid header nests three levels deep; the limits only have to stop hostile input from
    // costing stack depth or quadratic number parsing, not constrain real files.
    private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxNestingDepth(64)
                    .maxNumberLength(64)
                    .maxStringLength((int) MAX_HEADER_BYTES)
                    .build())
            .build());

    final long headerLength;
    final Map<String, String> metadata;
    /** Sorted by position in the data buffer, which is file order. */
    final List<TensorInfo> tensors;

    private SafetensorsHeader(long headerLength, Map<String, String> metadata, List<TensorInfo> tensors) {
        this.headerLength = headerLength;
        this.metadata = metadata;
        this.tensors = tensors;
    }

    /** The data buffer's offset within the file. */
    long dataOffset() {
        return 8 + headerLength;
    }

    static SafetensorsHeader parse(String fileName, MemorySegment file) throws SafetensorsException {
        long fileSize = file.byteSize();
        if (fileSize < 8) {
            throw new SafetensorsException(fileName + ": file has " + fileSize
                    + " bytes, fewer than the 8-byte header length prefix");
        }
        long headerLength = file.get(U64_LE, 0);
        // Compared as unsigned: a length with the top bit set is a huge u64, not a negative one.
        if (Long.compareUnsigned(headerLength, MAX_HEADER_BYTES) > 0) {
            throw new SafetensorsException(fileName + ": header length " + Long.toUnsignedString(headerLength)
                    + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes");
        }
        if (headerLength > fileSize - 8) {
            throw new SafetensorsException(fileName + ": header length " + headerLength + " runs past the end of the file ("
                    + (fileSize - 8) + " bytes follow the length prefix)");
        }
        byte[] headerBytes = file.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
        String text = decodeUtf8(fileName, headerBytes);
        JsonNode root = parseJsonObject(fileName, text);

        long dataLength = fileSize - 8 - headerLength;
        Map<String, String> metadata = Map.of();
        List<TensorInfo> tensors = new ArrayList<>(root.size());
        for (Map.Entry<String, JsonNode> entry : root.properties()) {
            if (entry.getKey().equals(METADATA_KEY)) {
                metadata = parseMetadata(fileName, entry.getValue());
            } else {
                tensors.add(parseTensor(fileName, entry.getKey(), entry.getValue(), dataLength));
            }
        }
        tensors.sort(Comparator.comparingLong(TensorInfo::begin)
                .thenComparingLong(TensorInfo::end)
                .thenComparing(TensorInfo::name));
        checkCoverage(fileName, tensors, dataLength);
        return new SafetensorsHeader(headerLength, metadata, List.copyOf(tensors));
    }

    private static String decodeUtf8(String fileName, byte[] bytes) throws SafetensorsException {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsException(fileName + ": header is not valid UTF-8", e);
        }
    }

    private static JsonNode parseJsonObject(String fileName, String text) throws SafetensorsException {
        // The reference reader insists on '{' as the very first byte (no leading whitespace).
        if (text.isEmpty() || text.charAt(0) != '{') {
            String start = text.isEmpty() ? "it is empty" : "it starts with " + describe(text.codePointAt(0));
            throw new SafetensorsException(fileName + ": header is not a JSON object (" + start + ")");
        }
        try (JsonParser parser = JSON.createParser(text)) {
            JsonNode root = JSON.readTree(parser);
            if (parser.nextToken() != null) {
                throw new SafetensorsException(fileName + ": header has trailing data after its JSON object at character "
                        + parser.currentTokenLocation().getCharOffset());
            }
            return root;
        } catch (JacksonException e) {
            throw new SafetensorsException(fileName + ": header is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new SafetensorsException(fileName + ": header could not be parsed: " + e.getMessage(), e);
        }
    }

    private static String describe(int codePoint) {
        return codePoint >= 0x21 && codePoint < 0x7f
                ? "'" + (char) codePoint + "'"
                : String.format("U+%04X", codePoint);
    }

    private static Map<String, String> parseMetadata(String fileName, JsonNode node) throws SafetensorsException {
        if (node.isNull()) {
            return Map.of();
        }
        if (!node.isObject()) {
            throw new SafetensorsException(fileName + ": " + METADATA_KEY + " must be an object of strings, found "
                    + kind(node));
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : node.properties()) {
            if (!entry.getValue().isTextual()) {
                throw new SafetensorsException(fileName + ": " + METADATA_KEY + " value of '" + entry.getKey()
                        + "' must be a string, found " + kind(entry.getValue()));
            }
            requireWellFormed(fileName, METADATA_KEY + " key '" + entry.getKey() + "'", entry.getKey());
            requireWellFormed(fileName, METADATA_KEY + " value of '" + entry.getKey() + "'", entry.getValue().textValue());
            metadata.put(entry.getKey(), entry.getValue().textValue());
        }
        return Collections.unmodifiableMap(metadata);
    }

    private static TensorInfo parseTensor(String fileName, String name, JsonNode node, long dataLength)
            throws SafetensorsException {
        String where = fileName + ": tensor '" + name + "': ";
        requireWellFormed(fileName, "tensor name '" + name + "'", name);
        if (!node.isObject()) {
            throw new SafetensorsException(where + "entry must be an object, found " + kind(node));
        }
        JsonNode dtypeNode = require(where, node, "dtype");
        JsonNode shapeNode = require(where, node, "shape");
        JsonNode offsetsNode = require(where, node, "data_offsets");

        if (!dtypeNode.isTextual()) {
            throw new SafetensorsException(where + "dtype must be a string, found " + kind(dtypeNode));
        }
        DType dtype;
        try {
            dtype = DType.parse(dtypeNode.textValue());
        } catch (IllegalArgumentException e) {
            throw new SafetensorsException(where + e.getMessage());
        }

        if (!shapeNode.isArray()) {
            throw new SafetensorsException(where + "shape must be an array, found " + kind(shapeNode));
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeInteger(where + "shape[" + i + "]", shapeNode.get(i));
        }

        if (!offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw new SafetensorsException(where + "data_offsets must be an array of two integers, found "
                    + (offsetsNode.isArray() ? offsetsNode.size() + " elements" : kind(offsetsNode)));
        }
        long begin = nonNegativeInteger(where + "data_offsets[0]", offsetsNode.get(0));
        long end = nonNegativeInteger(where + "data_offsets[1]", offsetsNode.get(1));
        String offsets = "data_offsets [" + begin + ", " + end + "]";
        if (end < begin) {
            throw new SafetensorsException(where + offsets + " end before they begin");
        }

        long byteCount;
        try {
            long numel = 1;
            for (long dim : shape) {
                numel = Math.multiplyExact(numel, dim);
            }
            byteCount = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException overflow) {
            throw new SafetensorsException(where + "shape " + Arrays.toString(shape) + " of " + dtype
                    + " overflows a 64-bit byte count");
        }
        if (end - begin != byteCount) {
            throw new SafetensorsException(where + offsets + " hold " + (end - begin) + " bytes but shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + byteCount);
        }
        if (end > dataLength) {
            throw new SafetensorsException(where + offsets + " reach past the data buffer, which has "
                    + dataLength + " bytes");
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /**
     * A JSON escape can spell an unpaired UTF-16 surrogate, which is no Unicode text; the reference
     * parser (serde_json) refuses it, so this reader does too.
     */
    private static void requireWellFormed(String fileName, String what, String text) throws SafetensorsException {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new SafetensorsException(fileName + ": " + what + " contains an unpaired surrogate escape");
            }
        }
    }

    private static JsonNode require(String where, JsonNode entry, String field) throws SafetensorsException {
        JsonNode value = entry.get(field);
        if (value == null) {
            throw new SafetensorsException(where + "missing '" + field + "'");
        }
        return value;
    }

    private static long nonNegativeInteger(String what, JsonNode node) throws SafetensorsException {
        if (!node.isIntegralNumber()) {
            throw new SafetensorsException(what + " must be a non-negative integer, found "
                    + (node.isNumber() ? node.asText() : kind(node)));
        }
        if (!node.canConvertToLong()) {
            throw new SafetensorsException(what + " = " + node.asText() + " does not fit in 64 bits");
        }
        long value = node.longValue();
        if (value < 0) {
            throw new SafetensorsException(what + " must be a non-negative integer, found " + value);
        }
        return value;
    }

    /** The data buffer must be tiled exactly: no gaps, no overlaps, nothing after the last tensor. */
    private static void checkCoverage(String fileName, List<TensorInfo> sorted, long dataLength)
            throws SafetensorsException {
        long covered = 0;
        TensorInfo previous = null;
        for (TensorInfo tensor : sorted) {
            if (tensor.begin() > covered) {
                throw new SafetensorsException(fileName + ": tensor '" + tensor.name() + "': bytes [" + covered + ", "
                        + tensor.begin() + ") of the data buffer before it belong to no tensor");
            }
            if (tensor.begin() < covered) {
                throw new SafetensorsException(fileName + ": tensor '" + tensor.name() + "': data_offsets ["
                        + tensor.begin() + ", " + tensor.end() + "] overlap tensor '" + previous.name()
                        + "', which ends at " + covered);
            }
            covered = tensor.end();
            previous = tensor;
        }
        if (covered != dataLength) {
            throw new SafetensorsException(fileName + ": the data buffer has " + dataLength
                    + " bytes but the tensors cover only the first " + covered);
        }
    }

    private static String kind(JsonNode node) {
        return switch (node.getNodeType()) {
            case OBJECT -> "an object";
            case ARRAY -> "an array";
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            default -> node.getNodeType().toString().toLowerCase(Locale.ROOT);
        };
    }
}
