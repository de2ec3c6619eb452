package dev.loraflow.core.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/** Typed reads of config.json keys, with messages that name the file and the key. */
final class ConfigFields {

    // Python's json keeps the last of two equal keys; rejecting them avoids guessing which one was meant.
    private static final ObjectMapper JSON = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build());

    private final JsonNode root;
    private final String source;

    private ConfigFields(JsonNode root, String source) {
        this.root = root;
        this.source = source;
    }

    static ConfigFields parse(String json, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JacksonException e) {
            throw new ModelConfigException(source + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelConfigException(source + ": must hold a JSON object");
        }
        return new ConfigFields(root, source);
    }

    /** Null for an absent key and for an explicit null, which HF treats alike. */
    private JsonNode value(String key) {
        JsonNode value = root.get(key);
        return value == null || value.isNull() ? null : value;
    }

    boolean has(String key) {
        return value(key) != null;
    }

    JsonNode raw(String key) {
        return value(key);
    }

    /** Whether the key is written at all, null included: where HF's default differs from an explicit null. */
    boolean declared(String key) {
        return root.has(key);
    }

    /** A number that may be absent (the fallback) or an explicit null (0, meaning "none"). */
    double positiveNumberOrNone(String key, double fallback) {
        if (!declared(key)) {
            return fallback;
        }
        return has(key) ? positiveNumber(key, fallback) : 0;
    }

    /** An integer that may be absent (the fallback) or an explicit null (0, meaning "none"). */
    int positiveIntOrNone(String key, int fallback) {
        if (!declared(key)) {
            return fallback;
        }
        return has(key) ? requiredPositiveInt(key) : 0;
    }

    String requiredString(String key) {
        JsonNode value = required(key);
        if (!value.isTextual()) {
            throw error("'" + key + "' must be a string, found " + value);
        }
        return value.textValue();
    }

    String string(String key, String fallback) {
        return has(key) ? requiredString(key) : fallback;
    }

    int requiredPositiveInt(String key) {
        JsonNode value = required(key);
        if (!value.isIntegralNumber() || !value.canConvertToInt()) {
            throw error("'" + key + "' must be an integer, found " + value);
        }
        if (value.intValue() <= 0) {
            throw error("'" + key + "' must be positive, found " + value.intValue());
        }
        return value.intValue();
    }

    int positiveInt(String key, int fallback) {
        return has(key) ? requiredPositiveInt(key) : fallback;
    }

    double positiveNumber(String key, double fallback) {
        JsonNode value = value(key);
        if (value == null) {
            return fallback;
        }
        if (!value.isNumber() || !(value.doubleValue() > 0) || !Double.isFinite(value.doubleValue())) {
            throw error("'" + key + "' must be a positive number, found " + value);
        }
        return value.doubleValue();
    }

    boolean bool(String key, boolean fallback) {
        JsonNode value = value(key);
        if (value == null) {
            return fallback;
        }
        if (!value.isBoolean()) {
            throw error("'" + key + "' must be true or false, found " + value);
        }
        return value.booleanValue();
    }

    /** The records' own check, for configs built in code; its message names the HF key. */
    static void requirePositive(String key, int value) {
        if (value <= 0) {
            throw new ModelConfigException("'" + key + "' must be positive, found " + value);
        }
    }

    ModelConfigException error(String message) {
        return new ModelConfigException(source + ": " + message);
    }

    private JsonNode required(String key) {
        JsonNode value = value(key);
        if (value == null) {
            throw error("missing required key '" + key + "'");
        }
        return value;
    }
}
