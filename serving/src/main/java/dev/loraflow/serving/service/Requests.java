package dev.loraflow.serving.service;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.exc.ValueInstantiationException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.ServedModel;
import java.io.IOException;
import java.lang.reflect.RecordComponent;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/** Reading request bodies and the generation parameters both APIs share, each refusal naming the parameter. */
public final class Requests {

    public static final ObjectMapper JSON = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build());

    private static final PropertyNamingStrategies.NamingBase JSON_NAMES =
            (PropertyNamingStrategies.NamingBase) PropertyNamingStrategies.SNAKE_CASE;
    /** Binds checked bodies to records: snake_case fields, unknown ones ignored. */
    private static final ObjectMapper BINDER = JSON.copy().setPropertyNamingStrategy(JSON_NAMES)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    private Requests() {}

    /**
     * The body as a JSON object.
     *
     * @throws ApiError 413 over {@code maxBytes}; 400 when not UTF-8, not JSON, or not an object
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
            throw new ApiError(400, "the request body is not valid JSON: " + e.getOriginalMessage(), null, "invalid_json");
        } catch (IOException e) {
            throw new ApiError(400, "the request body could not be read: " + e.getMessage(), null, "invalid_json");
        }
        if (root == null || !root.isObject()) {
            throw new ApiError(400, "the request body must be a JSON object", null, "invalid_json");
        }
        return root;
    }

    /**
     * The body, checked as {@link #jsonObject} checks it, bound to {@code type} (a {@link JsonBody} record, its
     * components named as the JSON fields, snake_case): a string component holding another JSON type is refused
     * naming the field; unknown fields are ignored; the record's constructor refuses the rest.
     *
     * @throws ApiError 400 (or 413) saying what is wrong
     */
    public static <T extends Record> T bind(byte[] body, long maxBytes, Class<T> type) {
        JsonNode root = jsonObject(body, maxBytes);
        for (RecordComponent component : type.getRecordComponents()) {
            String field = JSON_NAMES.translate(component.getName());
            JsonNode value = root.get(field);
            if (component.getType() == String.class && value != null && !value.isNull() && !value.isTextual()) {
                throw ApiError.badParameter(field, "'" + field + "' must be a string");
            }
        }
        try {
            return BINDER.treeToValue(root, type);
        } catch (ValueInstantiationException e) {
            if (e.getCause() instanceof ApiError refusal) {
                throw refusal;
            }
            throw new ApiError(400, "the request body is not a valid " + type.getSimpleName() + ": " + e.getOriginalMessage(),
                    null, "invalid_body");
        } catch (JsonProcessingException e) {
            throw new ApiError(400, "the request body is not a valid " + type.getSimpleName() + ": " + e.getOriginalMessage(),
                    null, "invalid_body");
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

    public static String requiredString(JsonNode root, String field) {
        JsonNode value = root.get(field);
        if (value == null || value.isNull()) {
            throw ApiError.badParameter(field, "'" + field + "' is required");
        }
        if (!value.isTextual()) {
            throw ApiError.badParameter(field, "'" + field + "' must be a string");
        }
        return value.textValue();
    }

    /** A string field that may be absent or null (then null); anything else is a 400 saying what it must be. */
    public static String optionalString(JsonNode root, String field, String mustBe) {
        JsonNode value = root.get(field);
        if (value == null || value.isNull()) {
            return null;
        }
        if (!value.isTextual()) {
            throw ApiError.badParameter(field, field + " must be " + mustBe);
        }
        return value.textValue();
    }

    /**
     * The sampling settings of a request: max_tokens (default {@code defaultMaxTokens}), temperature
     * (default 1, 0 greedy, at most 2), top_p (default 1), top_k (default 0 = off; −1 also off, as vLLM
     * takes it), seed (default random); the model's end-of-text token stops generation.
     *
     * @throws ApiError 400 naming the parameter, or when the prompt and max_tokens exceed the context
     */
    public static SamplingSettings sampling(JsonNode parameters, ServedModel model, int promptLength, int defaultMaxTokens) {
        int context = model.contextLength();
        if (promptLength >= context) {
            throw new ApiError(400, "the prompt is " + promptLength + " tokens; the model's context of " + context
                    + " tokens leaves no room for an answer", "prompt", "context_length_exceeded");
        }
        int maxTokens = integer(parameters, "max_tokens", defaultMaxTokens);
        if (maxTokens <= 0) {
            throw ApiError.badParameter("max_tokens", "max_tokens must be at least 1, got " + maxTokens);
        }
        if ((long) promptLength + maxTokens > context) {
            throw new ApiError(400, "the prompt (" + promptLength + " tokens) and max_tokens (" + maxTokens
                    + ") exceed the model's context of " + context + " tokens", "max_tokens", "context_length_exceeded");
        }
        double temperature = number(parameters, "temperature", 1);
        if (!(temperature >= 0 && temperature <= 2)) {
            throw ApiError.badParameter("temperature", "temperature must be between 0 and 2, got " + temperature);
        }
        double topP = number(parameters, "top_p", 1);
        if (!(topP > 0 && topP <= 1)) {
            throw ApiError.badParameter("top_p", "top_p must be in (0, 1], got " + topP);
        }
        int topK = integer(parameters, "top_k", 0);
        if (topK < -1) {
            throw ApiError.badParameter("top_k", "top_k must be ≥ 0 (0 or -1 = off), got " + topK);
        }
        JsonNode seedNode = parameters.get("seed");
        long seed;
        if (seedNode == null || seedNode.isNull()) {
            seed = ThreadLocalRandom.current().nextLong();
        } else if (seedNode.isIntegralNumber() && seedNode.canConvertToLong()) {
            seed = seedNode.longValue();
        } else {
            throw ApiError.badParameter("seed", "seed must be an integer, got " + seedNode);
        }
        return new SamplingSettings(maxTokens, temperature, Math.max(topK, 0), topP, seed, Set.copyOf(model.stopTokenIds()));
    }

    /** {@code stop}: absent, a string, or an array of up to four non-empty strings of at most 128 characters. */
    public static List<String> stopSequences(JsonNode parameters, ServedModel model) {
        JsonNode stop = parameters.get("stop");
        if (stop == null || stop.isNull()) {
            return List.of();
        }
        List<String> stops = new ArrayList<>();
        if (stop.isTextual()) {
            stops.add(stop.textValue());
        } else if (stop.isArray()) {
            for (JsonNode element : stop) {
                if (!element.isTextual()) {
                    throw ApiError.badParameter("stop", "stop must be a string or an array of strings");
                }
                stops.add(element.textValue());
            }
        } else {
            throw ApiError.badParameter("stop", "stop must be a string or an array of strings");
        }
        if (stops.size() > GenerationRequest.MAX_STOP_SEQUENCES) {
            throw ApiError.badParameter("stop", "at most " + GenerationRequest.MAX_STOP_SEQUENCES + " stop sequences, got "
                    + stops.size());
        }
        if (stops.stream().anyMatch(String::isEmpty)) {
            throw ApiError.badParameter("stop", "stop sequences must not be empty");
        }
        if (stops.stream().anyMatch(sequence -> sequence.length() > GenerationRequest.MAX_STOP_CHARS)) {
            throw ApiError.badParameter("stop", "a stop sequence may have at most " + GenerationRequest.MAX_STOP_CHARS
                    + " characters");
        }
        if (!stops.isEmpty() && model.tokenizer() == null) {
            throw ApiError.badParameter("stop", "stop sequences need a tokenizer, and this model has none");
        }
        return stops;
    }

    public static int integer(JsonNode parameters, String field, int defaultValue) {
        JsonNode value = parameters.get(field);
        if (value == null || value.isNull()) {
            return defaultValue;
        }
        if (!value.isIntegralNumber() || !value.canConvertToInt()) {
            throw ApiError.badParameter(field, field + " must be an integer, got " + value);
        }
        return value.intValue();
    }

    public static double number(JsonNode parameters, String field, double defaultValue) {
        JsonNode value = parameters.get(field);
        if (value == null || value.isNull()) {
            return defaultValue;
        }
        if (!value.isNumber()) {
            throw ApiError.badParameter(field, field + " must be a number, got " + value);
        }
        return value.doubleValue();
    }

    public static boolean bool(JsonNode parameters, String field) {
        JsonNode value = parameters.get(field);
        if (value == null || value.isNull()) {
            return false;
        }
        if (!value.isBoolean()) {
            throw ApiError.badParameter(field, field + " must be true or false, got " + value);
        }
        return value.booleanValue();
    }

    /** Ids given as a JSON array of integers, each in the vocabulary. */
    public static int[] tokenIds(JsonNode array, String param, int vocab) {
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode id = array.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || id.intValue() >= vocab) {
                throw ApiError.badParameter(param, param + "[" + i + "] must be a token id in [0, " + vocab + "), got " + id);
            }
            ids[i] = id.intValue();
        }
        return ids;
    }
}
