package dev.loraflow.inference;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * A chat template: the Jinja {@code chat_template} of a model's {@code tokenizer_config.json} (or its
 * {@code chat_template.jinja}), rendered
 * as Transformers' {@code apply_chat_template} does (blocks trimmed and left-stripped; {@code messages},
 * {@code add_generation_prompt = true}, the config's special tokens such as {@code bos_token} and
 * {@code eos_token}, and {@code raise_exception(message)}), by Jinjava. Models without one get
 * {@link #FALLBACK}.
 *
 * <p>Jinjava lives here, in the engine library, rather than in the service: the template belongs to the
 * model files the engine loads, and the command line can render the same prompts without Quarkus.
 */
public final class ChatTemplate {

    /** One chat message. */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }
    }

    /** Each message as {@code <|role|>\ncontent\n}, then {@code <|assistant|>\n}. */
    public static final ChatTemplate FALLBACK = new ChatTemplate(
            "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}<|assistant|>\n",
            Map.of(), "the fallback template");

    /** The template in a file of its own, beside tokenizer_config.json. */
    public static final String JINJA_FILE_NAME = "chat_template.jinja";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Jinjava JINJA = jinja();

    private final String template;
    private final Map<String, String> specialTokens;
    private final String source;

    private ChatTemplate(String template, Map<String, String> specialTokens, String source) {
        this.template = template;
        this.specialTokens = Map.copyOf(specialTokens);
        this.source = source;
    }

    /** A template with the special tokens it may name ({@code bos_token}, {@code eos_token}, ...). */
    public static ChatTemplate of(String template, Map<String, String> specialTokens) {
        return new ChatTemplate(Objects.requireNonNull(template, "template"), specialTokens, "the chat template");
    }

    /**
     * The chat template of the model whose {@code tokenizer_config.json} is given: {@value #JINJA_FILE_NAME}
     * beside it when present (where recent Transformers versions save it), else the config's
     * {@code chat_template}, a string or a list of named templates of which {@code default} is taken;
     * empty when neither is there. The special tokens come from the config.
     *
     * @throws IOException naming the file when it is unreadable, not JSON, or the field has another shape
     */
    public static Optional<ChatTemplate> read(Path tokenizerConfig) throws IOException {
        JsonNode root = null;
        if (Files.isRegularFile(tokenizerConfig)) {
            try {
                root = JSON.readTree(Files.readAllBytes(tokenizerConfig));
            } catch (JacksonException e) {
                throw new IOException(tokenizerConfig + ": not valid JSON: " + e.getOriginalMessage(), e);
            }
        }
        Map<String, String> specialTokens = new LinkedHashMap<>();
        if (root != null) {
            for (var field : root.properties()) {
                JsonNode token = field.getValue().isObject() ? field.getValue().path("content") : field.getValue();
                if (field.getKey().endsWith("_token") && token.isTextual()) {
                    specialTokens.put(field.getKey(), token.textValue());
                }
            }
        }
        Path jinja = tokenizerConfig.resolveSibling(JINJA_FILE_NAME);
        if (Files.isRegularFile(jinja)) {
            return Optional.of(new ChatTemplate(Files.readString(jinja), specialTokens, "the " + JINJA_FILE_NAME));
        }
        JsonNode chatTemplate = root == null ? null : root.get("chat_template");
        if (chatTemplate == null || chatTemplate.isNull()) {
            return Optional.empty();
        }
        String template = null;
        if (chatTemplate.isTextual()) {
            template = chatTemplate.textValue();
        } else if (chatTemplate.isArray()) {
            for (JsonNode named : chatTemplate) {
                if ("default".equals(named.path("name").textValue()) && named.path("template").isTextual()) {
                    template = named.path("template").textValue();
                }
            }
        }
        if (template == null) {
            throw new IOException(tokenizerConfig + ": chat_template must be a string or a list of {name, template}"
                    + " holding one named default, found " + chatTemplate);
        }
        return Optional.of(new ChatTemplate(template, specialTokens, "the chat_template of " + tokenizerConfig.getFileName()));
    }

    /**
     * The prompt for {@code messages}, ending where the assistant's answer begins.
     *
     * @throws ChatTemplateException when the template does not parse, fails, or calls raise_exception
     */
    public String render(List<Message> messages) throws ChatTemplateException {
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", messages.stream().map(m -> Map.of("role", m.role(), "content", m.content())).toList());
        context.put("add_generation_prompt", true);
        RenderResult result = JINJA.renderForResult(template, context);
        for (TemplateError error : result.getErrors()) {
            if (error.getSeverity() != TemplateError.ErrorType.FATAL
                    && error.getReason() != TemplateError.ErrorReason.SYNTAX_ERROR) {
                continue;
            }
            for (Throwable cause = error.getException(); cause != null; cause = cause.getCause()) {
                if (cause instanceof Raised raised) {
                    throw new ChatTemplateException(source + " refused the messages: " + raised.getMessage());
                }
            }
            throw new ChatTemplateException(source + " failed to render: " + error.getMessage()
                    + (error.getLineno() > 0 ? " (line " + error.getLineno() + ")" : ""));
        }
        return result.getOutput();
    }

    public String template() {
        return template;
    }

    /**
     * Transformers' settings (a block tag's own line leaves no blank or indent behind), and Jinjava's
     * overrides towards Python's Jinja2: {@code {{-}} trims, Python's operator precedence, dict literals
     * and loops over dicts as in Python, backslashes only as escapes inside quotes.
     */
    private static Jinjava jinja() {
        LegacyOverrides jinja2 = LegacyOverrides.newBuilder().withUseTrimmingForNotesAndExpressions(true)
                .withParseWhitespaceControlStrictly(true).withAllowAdjacentTextNodes(true)
                .withUseNaturalOperatorPrecedence(true).withEvaluateMapKeys(true).withIterateOverMapKeys(true)
                .withKeepNullableLoopValues(true).withHandleBackslashInQuotesOnly(true).build();
        Jinjava jinja = new Jinjava(JinjavaConfig.newBuilder().withTrimBlocks(true).withLstripBlocks(true)
                .withLegacyOverrides(jinja2).build());
        jinja.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class,
                "raiseException", String.class));
        return jinja;
    }

    /** {@code raise_exception(message)}, the templates' way to refuse a conversation (roles out of order, ...). */
    public static String raiseException(String message) {
        throw new Raised(message);
    }

    private static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message, null, false, false);
        }
    }
}
