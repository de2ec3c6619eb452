package dev.loraflow.serving.service;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.ServedModel;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The generation parameters every inference API takes, checked in one place: OpenAI's at the top of its bodies,
 * KServe's in {@code parameters} over REST and gRPC alike. Absent (null) means the default: max_tokens the
 * endpoint's, temperature 1 (0 greedy, at most 2), top_p 1, top_k 0 = off (−1 also off, as vLLM takes it), seed
 * random, no stop sequences.
 *
 * @param stop at most {@link GenerationRequest#MAX_STOP_SEQUENCES} non-empty strings of at most
 *             {@link GenerationRequest#MAX_STOP_CHARS} characters; in JSON a string or an array of strings
 */
public record GenerationParameters(Integer maxTokens, Double temperature, Double topP, Integer topK, Long seed,
                                   List<String> stop) {

    public static final GenerationParameters DEFAULTS = new GenerationParameters(null, null, null, null, null, List.of());

    /** @throws ApiError 400 naming the parameter out of range */
    public GenerationParameters {
        if (maxTokens != null && maxTokens <= 0) {
            throw ApiError.badParameter("max_tokens", "max_tokens must be at least 1, got " + maxTokens);
        }
        if (temperature != null && !(temperature >= 0 && temperature <= 2)) {
            throw ApiError.badParameter("temperature", "temperature must be between 0 and 2, got " + temperature);
        }
        if (topP != null && !(topP > 0 && topP <= 1)) {
            throw ApiError.badParameter("top_p", "top_p must be in (0, 1], got " + topP);
        }
        if (topK != null && topK < -1) {
            throw ApiError.badParameter("top_k", "top_k must be ≥ 0 (0 or -1 = off), got " + topK);
        }
        stop = List.copyOf(stop == null ? List.of() : stop);
        if (stop.size() > GenerationRequest.MAX_STOP_SEQUENCES) {
            throw ApiError.badParameter("stop", "at most " + GenerationRequest.MAX_STOP_SEQUENCES + " stop sequences, got "
                    + stop.size());
        }
        if (stop.stream().anyMatch(String::isEmpty)) {
            throw ApiError.badParameter("stop", "stop sequences must not be empty");
        }
        if (stop.stream().anyMatch(sequence -> sequence.length() > GenerationRequest.MAX_STOP_CHARS)) {
            throw ApiError.badParameter("stop", "a stop sequence may have at most " + GenerationRequest.MAX_STOP_CHARS
                    + " characters");
        }
    }

    /** From JSON, where {@code stop} is a string or an array of strings. */
    @JsonCreator
    static GenerationParameters fromJson(@JsonProperty("max_tokens") Integer maxTokens,
                                         @JsonProperty("temperature") Double temperature,
                                         @JsonProperty("top_p") Double topP, @JsonProperty("top_k") Integer topK,
                                         @JsonProperty("seed") Long seed, @JsonProperty("stop") JsonNode stop) {
        return new GenerationParameters(maxTokens, temperature, topP, topK, seed, stopSequences(stop));
    }

    private static List<String> stopSequences(JsonNode stop) {
        if (stop == null || stop.isNull()) {
            return List.of();
        }
        if (stop.isTextual()) {
            return List.of(stop.textValue());
        }
        List<String> stops = new ArrayList<>();
        if (stop.isArray()) {
            for (JsonNode element : stop) {
                if (!element.isTextual()) {
                    break;
                }
                stops.add(element.textValue());
            }
            if (stops.size() == stop.size()) {
                return stops;
            }
        }
        throw ApiError.badParameter("stop", "stop must be a string or an array of strings, got " + Requests.quoted(stop));
    }

    /** These parameters with max_tokens {@code maxTokens} when they give none. */
    public GenerationParameters withDefaultMaxTokens(Integer maxTokens) {
        return this.maxTokens != null || maxTokens == null ? this
                : new GenerationParameters(maxTokens, temperature, topP, topK, seed, stop);
    }

    /**
     * The engine's request for {@code prompt} on {@code model}.
     *
     * @param defaultMaxTokens max_tokens when the parameters give none
     * @throws ApiError 400 when the prompt and max_tokens exceed the model's context, or for stop sequences on a
     *                  model without a tokenizer
     */
    public GenerationRequest request(int[] prompt, ServedModel model, String adapter, int defaultMaxTokens) {
        int context = model.contextLength();
        if (prompt.length >= context) {
            throw new ApiError(400, "the prompt is " + prompt.length + " tokens; the model's context of " + context
                    + " tokens leaves no room for an answer", "prompt", "context_length_exceeded");
        }
        int tokens = maxTokens == null ? defaultMaxTokens : maxTokens;
        if ((long) prompt.length + tokens > context) {
            throw new ApiError(400, "the prompt (" + prompt.length + " tokens) and max_tokens (" + tokens
                    + ") exceed the model's context of " + context + " tokens", "max_tokens", "context_length_exceeded");
        }
        if (!stop.isEmpty() && model.tokenizer() == null) {
            throw ApiError.badParameter("stop", "stop sequences need a tokenizer, and this model has none");
        }
        SamplingSettings sampling = new SamplingSettings(tokens, temperature == null ? 1 : temperature,
                topK == null ? 0 : Math.max(topK, 0), topP == null ? 1 : topP,
                seed == null ? ThreadLocalRandom.current().nextLong() : seed, Set.copyOf(model.stopTokenIds()));
        return new GenerationRequest(prompt, sampling, stop, adapter);
    }
}
