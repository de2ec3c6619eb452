package dev.loraflow.serving.service;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.exc.InputCoercionException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.ValueInstantiationException;
import com.fasterxml.jackson.databind.node.MissingNode;
import com.fasterxml.jackson.databind.type.LogicalType;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.Map;
import java.util.regex.Pattern;
import org.jboss.logging.Logger;

/**
 * Request bodies bound to records: one place for the checks every body gets and for turning the binder's
 * refusals into 400s that name the field, never the binder's own words (class names, stack traces).
 */
public final class Requests {

    private static final Logger LOG = Logger.getLogger(Requests.class);

    public static final ObjectMapper JSON = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build());

    /**
     * Binds checked bodies to records: snake_case fields, unknown ones ignored (as OpenAI does), and each value of
     * the JSON type its component declares — no string taken for a number or a boolean, no number for a string,
     * no fraction for an integer.
     */
    private static final ObjectMapper BINDER = strict(JSON.copy());

    /** How long a refused value may be quoted back in the refusal. */
    private static final int QUOTED_VALUE_CHARS = 64;
    /**
     * Where Jackson names its own configuration in a parser's message: "(…, from `X.y()`)", "enable `X` to allow",
     * "[Source: REDACTED (`X` disabled); line: …]".
     */
    private static final Pattern JACKSON_NAMES = Pattern.compile(", from `[^`]*`|: enable `[^`]*` to allow|Source: [^;\\]]*; ");

    private Requests() {}

    @SuppressWarnings("deprecation") // ALLOW_COERCION_OF_SCALARS is how Jackson 2 turns the scalar coercions off
    private static ObjectMapper strict(ObjectMapper mapper) {
        mapper.setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
                .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS);
        mapper.coercionConfigFor(LogicalType.Textual).setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail);
        return mapper;
    }

    /**
     * The body as a JSON object.
     *
     * @throws ApiError 413 over {@code maxBytes}; 400 when not UTF-8, not JSON (duplicate keys, nesting or numbers
     *                  beyond the parser's limits included), or not an object
     */
    public static JsonNode jsonObject(byte[] body, long maxBytes) {
        if (body == null || body.length == 0) {
            throw new ApiError(400, "the request body is empty; send a JSON object", null, "invalid_body");
        }
        if (body.length > maxBytes) {
            throw new ApiError(413, "the request body is " + body.length + " bytes, more than the limit of " + maxBytes,
                    null, "request_too_large");
        }
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(body));
        } catch (CharacterCodingException e) {
            throw new ApiError(400, "the request body is not valid UTF-8", null, "invalid_utf8");
        }
        JsonNode root;
        try {
            root = JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw new ApiError(400, "the request body is not valid JSON: " + parserMessage(e), null, "invalid_json");
        } catch (IOException e) {
            throw new ApiError(400, "the request body could not be read: " + e.getMessage(), null, "invalid_json");
        }
        if (root == null || !root.isObject()) {
            throw new ApiError(400, "the request body must be a JSON object", null, "invalid_json");
        }
        return root;
    }

    /**
     * The body, checked as {@link #jsonObject} checks it, bound to {@code type} as {@link #bind(JsonNode, Class)}
     * binds it.
     *
     * @throws ApiError 400 (or 413) saying what is wrong
     */
    public static <T> T bind(byte[] body, long maxBytes, Class<T> type) {
        return bind(jsonObject(body, maxBytes), type);
    }

    /**
     * {@code json} bound to {@code type}, a record whose components are named as the JSON fields (snake_case). A
     * value of another JSON type than its component's is refused naming the field by its path (e.g.
     * {@code messages[0].content}); the records' constructors and factories check the rest and throw
     * {@link ApiError}s, which come out as they were thrown.
     *
     * @throws ApiError 400 saying what is wrong
     */
    public static <T> T bind(JsonNode json, Class<T> type) {
        try {
            return BINDER.treeToValue(json, type);
        } catch (JsonMappingException e) {
            for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
                if (cause instanceof ApiError refusal) {
                    throw refusal;
                }
            }
            if (e instanceof ValueInstantiationException && e.getCause() instanceof RuntimeException failure) {
                // A record's check failed otherwise than by refusing: the server's fault, not the body's.
                throw failure;
            }
            throw wrongValue(json, e);
        } catch (JsonProcessingException e) {
            LOG.debugf("a request body did not bind to %s: %s", type.getName(), e.getOriginalMessage());
            throw new ApiError(400, "the request body could not be read: " + parserMessage(e), null, "invalid_body");
        }
    }

    /** A string field that must be present, non-null and non-blank: else 400 naming it. */
    public static String required(String value, String field) {
        if (value == null) {
            throw ApiError.badParameter(field, "'" + field + "' is required");
        }
        if (value.isBlank()) {
            throw ApiError.badParameter(field, field + " must not be blank");
        }
        return value;
    }

    /** The refusal of a value the binder could not take, naming the field by its path and quoting the value. */
    private static ApiError wrongValue(JsonNode root, JsonMappingException e) {
        StringBuilder path = new StringBuilder();
        JsonNode value = root;
        for (JsonMappingException.Reference reference : e.getPath()) {
            if (reference.getFieldName() != null) {
                path.append(path.isEmpty() ? "" : ".").append(reference.getFieldName());
                value = value.path(reference.getFieldName());
            } else if (reference.getIndex() >= 0) {
                path.append('[').append(reference.getIndex()).append(']');
                value = value.path(reference.getIndex());
            }
        }
        if (path.isEmpty()) {
            LOG.debugf("a request body did not bind: %s", e.getOriginalMessage());
            return new ApiError(400, "the request body is not a valid request for this endpoint", null, "invalid_body");
        }
        String field = path.toString();
        String got = value instanceof MissingNode ? "" : ", got " + quoted(value);
        if (e.getCause() instanceof InputCoercionException overflow) {
            String bits = overflow.getTargetType() == Integer.TYPE ? "32" : "64";
            return ApiError.badParameter(field, field + " must be a " + bits + "-bit integer" + got);
        }
        Class<?> target = e instanceof MismatchedInputException mismatch ? mismatch.getTargetType() : null;
        return ApiError.badParameter(field, field + " must be " + kind(target) + got);
    }

    /** What a value bound to {@code type} must be, in JSON's words. */
    private static String kind(Class<?> type) {
        if (type == null) {
            return "of another type";
        }
        if (type == Integer.class || type == int.class || type == Long.class || type == long.class
                || type == Short.class || type == short.class || type == BigInteger.class) {
            return "an integer";
        }
        if (Number.class.isAssignableFrom(type) || type == double.class || type == float.class || type == BigDecimal.class) {
            return "a number";
        }
        if (type == Boolean.class || type == boolean.class) {
            return "true or false";
        }
        if (type == String.class) {
            return "a string";
        }
        if (type.isArray() || Collection.class.isAssignableFrom(type)) {
            return "an array";
        }
        return Map.class.isAssignableFrom(type) || type.isRecord() ? "an object" : "of another type";
    }

    /** {@code text} as a JSON string, cut short as {@link #quoted(JsonNode)} cuts it. */
    public static String quoted(String text) {
        return quoted(JSON.getNodeFactory().textNode(text));
    }

    /** {@code value} as JSON, cut short: a refusal never echoes a large body back. */
    public static String quoted(JsonNode value) {
        String json = value.toString();
        return json.length() <= QUOTED_VALUE_CHARS ? json
                : json.substring(0, QUOTED_VALUE_CHARS) + "… (" + json.length() + " characters)";
    }

    /** The parser's complaint and where, without the parser's own configuration names. */
    private static String parserMessage(JsonProcessingException e) {
        String message = JACKSON_NAMES.matcher(String.valueOf(e.getOriginalMessage())).replaceAll("");
        JsonLocation location = e.getLocation();
        return location == null || location.getLineNr() < 0 ? message
                : message + " (line " + location.getLineNr() + ", column " + location.getColumnNr() + ")";
    }
}
