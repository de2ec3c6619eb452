package dev.loraflow.serving.rest;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonUnwrapped;
import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.inference.ChatTemplate;
import dev.loraflow.inference.ChatTemplateException;
import dev.loraflow.inference.ServedModel;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.GenerationParameters;
import dev.loraflow.serving.service.JsonBody;
import dev.loraflow.serving.service.Requests;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The OpenAI API's request bodies, bound by {@link JsonBodyReader} and checked as they are built: a record that
 * exists is valid but for what only the model can tell (token ids in its vocabulary, the prompt and max_tokens
 * within its context, its chat template). Unknown fields are ignored, as OpenAI ignores them.
 */
final class OpenAiRequests {

    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant");

    private OpenAiRequests() {}

    /** A completion request: the fields every endpoint takes, and the prompt as the model's token ids. */
    sealed interface OpenAiRequest {
        Options options();

        /** @throws ApiError 400 for a prompt the model cannot take */
        int[] promptTokens(ServedModel model);
    }

    /**
     * What both endpoints take besides the prompt: the model's name, the generation parameters, streaming, and
     * OpenAI's {@code n} and {@code logprobs}, accepted at their defaults only.
     */
    record Options(String model, Integer n, JsonNode logprobs, Boolean stream, StreamOptions streamOptions,
                   @JsonUnwrapped GenerationParameters parameters) {
        Options {
            if (model == null) {
                throw ApiError.badParameter("model", "'model' is required");
            }
            if (n != null && n != 1) {
                throw ApiError.badParameter("n", "only n = 1 is supported, got " + n);
            }
            // false or absent only: chat's logprobs is a boolean, completions' a count.
            if (logprobs != null && !logprobs.isNull() && !(logprobs.isBoolean() && !logprobs.booleanValue())) {
                throw ApiError.badParameter("logprobs", "logprobs are not supported");
            }
        }

        boolean streamed() {
            return Boolean.TRUE.equals(stream);
        }

        /** A streamed answer ends with a chunk of usage, as {@code stream_options.include_usage} asks. */
        boolean includeUsage() {
            return streamed() && streamOptions != null && Boolean.TRUE.equals(streamOptions.includeUsage());
        }
    }

    record StreamOptions(Boolean includeUsage) {}

    /** {@code POST /v1/completions}. */
    @JsonBody
    record CompletionRequest(Prompt prompt, @JsonUnwrapped Options options) implements OpenAiRequest {
        CompletionRequest {
            if (prompt == null) {
                throw ApiError.badParameter("prompt", "'prompt' is required");
            }
        }

        @Override
        public int[] promptTokens(ServedModel model) {
            return switch (prompt) {
                case Prompt.Text(String text) -> encode(model, text, "prompt");
                case Prompt.TokenIds(int[] ids) -> {
                    for (int i = 0; i < ids.length; i++) {
                        if (ids[i] >= model.vocabSize()) {
                            throw ApiError.badParameter("prompt", "prompt[" + i + "] must be a token id in [0, "
                                    + model.vocabSize() + "), got " + ids[i]);
                        }
                    }
                    yield ids;
                }
            };
        }
    }

    /** {@code prompt}: a string, an array holding one string, or a non-empty array of token ids. */
    sealed interface Prompt {
        record Text(String text) implements Prompt {}

        record TokenIds(int[] ids) implements Prompt {}

        @JsonCreator(mode = JsonCreator.Mode.DELEGATING)
        static Prompt fromJson(JsonNode prompt) {
            if (prompt.isArray() && prompt.size() == 1 && prompt.get(0).isTextual()) {
                return new Text(prompt.get(0).textValue());
            }
            if (prompt.isTextual()) {
                return new Text(prompt.textValue());
            }
            if (prompt.isArray() && !prompt.isEmpty() && prompt.get(0).isNumber()) {
                int[] ids = new int[prompt.size()];
                for (int i = 0; i < ids.length; i++) {
                    JsonNode id = prompt.get(i);
                    if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0) {
                        throw ApiError.badParameter("prompt", "prompt[" + i + "] must be a token id, got "
                                + Requests.quoted(id));
                    }
                    ids[i] = id.intValue();
                }
                return new TokenIds(ids);
            }
            throw ApiError.badParameter("prompt", "prompt must be a string, an array of token ids, or an array of one string");
        }
    }

    /**
     * {@code POST /v1/chat/completions}: the messages, rendered through the model's chat template; OpenAI's
     * {@code max_completion_tokens} stands for {@code max_tokens} when that is absent.
     */
    @JsonBody
    record ChatCompletionRequest(List<ChatMessage> messages, Integer maxCompletionTokens,
                                 @JsonUnwrapped Options options) implements OpenAiRequest {
        ChatCompletionRequest {
            if (messages == null || messages.isEmpty()) {
                throw ApiError.badParameter("messages", "'messages' must be a non-empty array of {role, content}");
            }
            for (int i = 0; i < messages.size(); i++) {
                ChatMessage message = messages.get(i);
                if (message == null) {
                    throw ApiError.badParameter("messages[" + i + "]", "messages[" + i + "] must be {role, content}, got null");
                }
                if (message.role() == null || !ROLES.contains(message.role())) {
                    throw ApiError.badParameter("messages[" + i + "].role", "role must be system, developer, user or assistant, got "
                            + (message.role() == null ? "null" : Requests.quoted(message.role())));
                }
                if (message.content() == null) {
                    throw ApiError.badParameter("messages[" + i + "].content", "content must be a string");
                }
            }
            messages = List.copyOf(messages);
            options = new Options(options.model(), options.n(), options.logprobs(), options.stream(),
                    options.streamOptions(), options.parameters().withDefaultMaxTokens(maxCompletionTokens));
        }

        /** The messages through the model's chat template, or the fallback {@link OpenAiResource} documents. */
        @Override
        public int[] promptTokens(ServedModel model) {
            List<ChatTemplate.Message> conversation = new ArrayList<>();
            for (ChatMessage message : messages) {
                conversation.add(new ChatTemplate.Message(message.role(), message.content()));
            }
            ChatTemplate template = model.chatTemplate() == null ? ChatTemplate.FALLBACK : model.chatTemplate();
            String prompt;
            try {
                prompt = template.render(conversation);
            } catch (ChatTemplateException e) {
                throw new ApiError(400, e.getMessage(), "messages", "chat_template_failed");
            }
            return encode(model, prompt, "messages");
        }
    }

    record ChatMessage(String role, String content) {}

    private static int[] encode(ServedModel model, String text, String param) {
        if (model.tokenizer() == null) {
            throw ApiError.badParameter(param, "this model has no tokenizer.json: give the prompt as token ids");
        }
        int[] ids = model.tokenizer().encode(text);
        if (ids.length == 0) {
            throw ApiError.badParameter(param, "the prompt is empty");
        }
        return ids;
    }
}
