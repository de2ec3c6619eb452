package dev.loraflow.platform.events;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Strict JSON for events: UTF-8 only, no duplicate keys, bounded nesting, typed reads with clear messages. */
final class Json {

    static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(32).build())
            .build());

    private Json() {}

    static ObjectNode parseObject(byte[] bytes, String what) throws EventFormatException {
        if (bytes == null) {
            throw new EventFormatException(what + ": empty record (no value)");
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new EventFormatException(what + ": not UTF-8 text");
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JacksonException e) {
            throw new EventFormatException(what + ": not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new EventFormatException(what + ": must be a JSON object");
        }
        return (ObjectNode) root;
    }

    /** Checks the schema name and version every event carries. */
    static void requireSchema(JsonNode root, String schema, int version, String what) throws EventFormatException {
        String found = text(root, "schema", what);
        if (!schema.equals(found)) {
            throw new EventFormatException(what + ": schema \"" + found + "\" is not \"" + schema + "\"");
        }
        long foundVersion = integer(root, "version", what);
        if (foundVersion != version) {
            throw new EventFormatException(what + ": schema version " + foundVersion + " is not supported (this build reads "
                    + version + ")");
        }
    }

    static String text(JsonNode root, String key, String what) throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || !value.isTextual() || value.asText().isBlank()) {
            throw new EventFormatException(what + ": \"" + key + "\" must be a non-empty string");
        }
        return value.asText();
    }

    static String optionalText(JsonNode root, String key, String fallback, String what) throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || value.isNull()) {
            return fallback;
        }
        return text(root, key, what);
    }

    static long integer(JsonNode root, String key, String what) throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || !value.isIntegralNumber() || !value.canConvertToLong()) {
            throw new EventFormatException(what + ": \"" + key + "\" must be an integer");
        }
        return value.asLong();
    }

    static long integer(JsonNode root, String key, long fallback, long min, long max, String what)
            throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || value.isNull()) {
            return fallback;
        }
        long number = integer(root, key, what);
        if (number < min || number > max) {
            throw new EventFormatException(what + ": \"" + key + "\" is " + number + ", outside [" + min + ", " + max + "]");
        }
        return number;
    }

    static double number(JsonNode root, String key, double fallback, double min, double max, String what)
            throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || value.isNull()) {
            return fallback;
        }
        if (!value.isNumber() || !Double.isFinite(value.asDouble()) || value.asDouble() < min || value.asDouble() > max) {
            throw new EventFormatException(what + ": \"" + key + "\" must be a number in [" + min + ", " + max + "]");
        }
        return value.asDouble();
    }

    static boolean bool(JsonNode root, String key, boolean fallback, String what) throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || value.isNull()) {
            return fallback;
        }
        if (!value.isBoolean()) {
            throw new EventFormatException(what + ": \"" + key + "\" must be true or false");
        }
        return value.asBoolean();
    }

    static JsonNode object(JsonNode root, String key, String what) throws EventFormatException {
        JsonNode value = root.get(key);
        if (value == null || value.isNull()) {
            return MAPPER.createObjectNode();
        }
        if (!value.isObject()) {
            throw new EventFormatException(what + ": \"" + key + "\" must be an object");
        }
        return value;
    }

    /** A JSON array of token ids (or -100 when {@code ignorable}) as ints. */
    static int[] ids(JsonNode value, String where, int vocab, boolean ignorable) throws EventFormatException {
        if (value == null || !value.isArray()) {
            throw new EventFormatException(where + " must be an array of token ids");
        }
        int[] ids = new int[value.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode id = value.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToInt()) {
                throw new EventFormatException(where + "[" + i + "] is not an integer");
            }
            int v = id.asInt();
            boolean ignored = ignorable && v == -100;
            if (!ignored && (v < 0 || v >= vocab)) {
                throw new EventFormatException(where + "[" + i + "] = " + v + " is outside the vocabulary [0, " + vocab + ")"
                        + (ignorable ? " and is not -100" : ""));
            }
            ids[i] = v;
        }
        return ids;
    }

    static List<String> strings(JsonNode value, String where) throws EventFormatException {
        List<String> strings = new ArrayList<>();
        for (JsonNode item : value) {
            if (!item.isTextual() || item.asText().isBlank()) {
                throw new EventFormatException(where + " must hold non-empty strings");
            }
            strings.add(item.asText());
        }
        return strings;
    }
}
