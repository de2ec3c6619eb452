package dev.loraflow.inference;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaProcessors;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.filter.CenterFilter;
import com.hubspot.jinjava.lib.filter.FormatFilter;
import com.hubspot.jinjava.lib.tag.ForTag;
import com.hubspot.jinjava.tree.TagNode;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.loader.ResourceNotFoundException;
import com.hubspot.jinjava.tree.Node;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.AbstractCollection;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A chat template: the Jinja {@code chat_template} of a model's {@code tokenizer_config.json} (or its
 * {@code chat_template.jinja}), rendered
 * as Transformers' {@code apply_chat_template} does (blocks trimmed and left-stripped; {@code messages},
 * {@code add_generation_prompt = true}, the config's special tokens such as {@code bos_token} and
 * {@code eos_token}, and {@code raise_exception(message)}), by Jinjava. Models without one get
 * {@link #FALLBACK}.
 *
 * <p>Sandboxed as Transformers' {@code ImmutableSandboxedEnvironment} sandboxes Jinja2: the messages are
 * data, never template source (no nested interpretation: a message holding <code>{% ... %}</code> or
 * <code>{{ ... }}</code> is output as written); the messages cannot be modified; nothing is loaded from
 * anywhere ({@code include}, {@code import}, {@code from} and {@code extends} are disabled and the resource
 * locator refuses every name); and one rendering is bounded: {@value #MAX_OUTPUT_CHARS} characters of output
 * (and of any string built), {@value #MAX_NODES} template nodes and loop iterations rendered (each
 * iteration renders its body's nodes too), {@value #MAX_RENDER_MILLIS} ms, ranges of {@value #MAX_RANGE} numbers and macro recursion
 * {@value #MAX_MACRO_DEPTH} deep. A template that breaks a bound fails to render.
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

    /** Characters one rendering may output, and the longest string it may build. */
    public static final long MAX_OUTPUT_CHARS = 8L << 20;
    /** Template nodes (text, expressions, tags) and loop iterations one rendering may render; a loop renders its body's once per iteration. */
    public static final long MAX_NODES = 1_000_000;
    /** Wall-clock time one rendering may take. */
    public static final long MAX_RENDER_MILLIS = 2_000;
    /** Numbers one {@code range()} may give, as Jinja2's sandbox ({@code MAX_RANGE}). */
    public static final int MAX_RANGE = 100_000;
    /** How deep a macro may call itself. */
    public static final int MAX_MACRO_DEPTH = 20;

    private static final ObjectMapper JSON = new ObjectMapper();
    /** The bounds of the rendering running on this thread (Jinjava renders on the caller's thread). */
    private static final ThreadLocal<RenderBudget> BUDGET = new ThreadLocal<>();
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
        RenderBudget budget = new RenderBudget();
        BUDGET.set(budget);
        RenderResult result;
        try {
            result = JINJA.renderForResult(template, context);
        } catch (RenderLimitExceeded e) {
            throw new ChatTemplateException(source + " failed to render: " + e.getMessage());
        } finally {
            BUDGET.remove();
        }
        for (TemplateError error : result.getErrors()) {
            // Jinjava records some failures Jinja2 raises (a macro past its recursion bound) as warnings
            // with an exception as their reason.
            if (error.getSeverity() != TemplateError.ErrorType.FATAL
                    && error.getReason() != TemplateError.ErrorReason.SYNTAX_ERROR
                    && error.getReason() != TemplateError.ErrorReason.EXCEPTION) {
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
     * and loops over dicts as in Python, backslashes only as escapes inside quotes. Then the sandbox
     * described on the class.
     */
    private static Jinjava jinja() {
        LegacyOverrides jinja2 = LegacyOverrides.newBuilder().withUseTrimmingForNotesAndExpressions(true)
                .withParseWhitespaceControlStrictly(true).withAllowAdjacentTextNodes(true)
                .withUseNaturalOperatorPrecedence(true).withEvaluateMapKeys(true).withIterateOverMapKeys(true)
                .withKeepNullableLoopValues(true).withHandleBackslashInQuotesOnly(true).build();
        Jinjava jinja = new Jinjava(JinjavaConfig.newBuilder().withTrimBlocks(true).withLstripBlocks(true)
                .withLegacyOverrides(jinja2)
                // Jinjava's default renders an expression's value again when it looks like a template: a
                // message's text would run as code.
                .withNestedInterpretationEnabled(false)
                .withDisabled(Map.of(Context.Library.TAG, Set.of("include", "import", "from", "extends")))
                .withMaxOutputSize(MAX_OUTPUT_CHARS).withMaxStringLength(MAX_OUTPUT_CHARS)
                .withRangeLimit(MAX_RANGE).withMaxListSize(MAX_RANGE).withMaxMapSize(MAX_RANGE)
                .withEnableRecursiveMacroCalls(true).withMaxMacroRecursionDepth(MAX_MACRO_DEPTH)
                .withProcessors(JinjavaProcessors.newBuilder().withNodePreProcessor(ChatTemplate::count).build())
                .build());
        jinja.setResourceLocator((name, encoding, interpreter) -> {
            throw new ResourceNotFoundException("chat templates load nothing; refused: " + name);
        });
        jinja.getGlobalContext().registerTag(new BoundedForTag());
        jinja.getGlobalContext().registerFilter(new BoundedCenterFilter());
        jinja.getGlobalContext().registerFilter(new BoundedFormatFilter());
        jinja.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class,
                "raiseException", String.class));
        return jinja;
    }

    /** {@code raise_exception(message)}, the templates' way to refuse a conversation (roles out of order, ...). */
    public static String raiseException(String message) {
        throw new Raised(message);
    }

    /** Counts a node about to render (or a loop iteration) against this thread's budget; past a bound, ends the rendering. */
    private static void count(Node node, JinjavaInterpreter interpreter) {
        RenderBudget budget = BUDGET.get();
        if (budget != null) {
            budget.spend();
        }
    }

    /** {@code for}, each iteration spending from the budget as a node does, so that an empty loop body costs too. */
    private static final class BoundedForTag extends ForTag {
        @Override
        public String renderForCollection(TagNode tagNode, JinjavaInterpreter interpreter, List<String> loopVars,
                                          Object collection) {
            return super.renderForCollection(tagNode, interpreter, loopVars,
                    collection instanceof Collection<?> items ? new CountedItems(items) : collection);
        }
    }

    /** A collection whose iteration spends one node of this thread's budget per item. */
    private static final class CountedItems extends AbstractCollection<Object> {
        private final Collection<?> items;

        CountedItems(Collection<?> items) {
            this.items = items;
        }

        @Override
        public Iterator<Object> iterator() {
            Iterator<?> iterator = items.iterator();
            return new Iterator<>() {
                @Override
                public boolean hasNext() {
                    return iterator.hasNext();
                }

                @Override
                public Object next() {
                    count(null, null);
                    return iterator.next();
                }
            };
        }

        @Override
        public int size() {
            return items.size();
        }
    }

    /** {@code center(width)}, which would build the whole padded string before the output bound sees it. */
    private static final class BoundedCenterFilter extends CenterFilter {
        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            if (args.length > 0 && tooWide(args[0].strip())) {
                throw new RenderLimitExceeded("center(" + args[0] + ") is wider than " + MAX_OUTPUT_CHARS + " characters");
            }
            return super.filter(var, interpreter, args);
        }
    }

    /** {@code format}, whose widths ({@code %99999999s}) would build strings before the output bound sees them. */
    private static final class BoundedFormatFilter extends FormatFilter {
        private static final Pattern WIDTHS = Pattern.compile("%(?:\\d+\\$)?[-#+ 0,(<]*(\\d*)(?:\\.(\\d+))?");

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Matcher width = WIDTHS.matcher(String.valueOf(var));
            while (width.find()) {
                for (int group = 1; group <= 2; group++) {
                    String digits = width.group(group);
                    if (digits != null && tooWide(digits)) {
                        throw new RenderLimitExceeded("format width " + digits + " is wider than " + MAX_OUTPUT_CHARS
                                + " characters");
                    }
                }
            }
            return super.filter(var, interpreter, args, kwargs);
        }
    }

    /** Whether {@code width}, when a whole number, is more than {@link #MAX_OUTPUT_CHARS}. */
    private static boolean tooWide(String width) {
        return width.matches("\\d+") && (width.length() > 18 || Long.parseLong(width) > MAX_OUTPUT_CHARS);
    }

    /** The nodes and time left to one rendering. */
    private static final class RenderBudget {
        private final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(MAX_RENDER_MILLIS);
        private long nodes;

        void spend() {
            if (++nodes > MAX_NODES) {
                throw new RenderLimitExceeded("more than " + MAX_NODES + " template nodes and loop iterations rendered");
            }
            if (System.nanoTime() - deadline > 0) {
                throw new RenderLimitExceeded("rendering took more than " + MAX_RENDER_MILLIS + " ms");
            }
        }
    }

    /**
     * Ends a rendering past its budget. An Error rather than an exception because Jinjava catches the
     * exceptions of a tag (a loop's body included), records them and goes on rendering: only an Error
     * unwinds it to {@link #render}.
     */
    private static final class RenderLimitExceeded extends Error {
        RenderLimitExceeded(String message) {
            super(message, null, false, false);
        }
    }

    private static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message, null, false, false);
        }
    }
}
