package dev.loraflow.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real Hugging Face chat templates rendered as Transformers' apply_chat_template renders them. */
class ChatTemplateTest {

    /** Meta-Llama-3-8B-Instruct's template: the filter binds to the content only, the BOS comes first. */
    static final String LLAMA_3 = "{% set loop_messages = messages %}{% for message in loop_messages %}"
            + "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
            + "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
            + "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    /**
     * ChatML as Qwen ships it, over several lines with whitespace control, and a default system message
     * when the conversation has none.
     */
    static final String CHATML = """
            {%- for message in messages %}
                {%- if loop.first and message.role != 'system' %}
                    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
                {%- endif %}
                {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
            {%- endfor %}
            {%- if add_generation_prompt %}
                {{- '<|im_start|>assistant\\n' }}
            {%- endif %}
            """;

    /** Mistral-Instruct's: a Python string method, the EOS token, and raise_exception on roles out of turn. */
    static final String MISTRAL = "{{ bos_token }}{% for message in messages %}"
            + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            + "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}"
            + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

    /** Gemma's (gemma-7b-it, gemma-2-*-it): no system role, the assistant called "model", contents trimmed. */
    static final String GEMMA = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
            + "{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}"
            + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            + "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
            + "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
            + "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";

    /** Phi-3-mini-4k-instruct's: a block per role, the EOS token only without a generation prompt. */
    static final String PHI_3 = "{% for message in messages %}{% if message['role'] == 'system' %}"
            + "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
            + "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
            + "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

    /** The probes of issue 15: a message that would run as a loop, and one that would read a file of the server. */
    static final String LOOP_PROBE = "{% for i in range(50) %}A{% endfor %}";
    static final String INCLUDE_PROBE = "{% include 'application.properties' %}{{ '{{' }}7*7}}";

    private static final List<ChatTemplate.Message> CONVERSATION = List.of(
            new ChatTemplate.Message("system", "  Be brief. "), new ChatTemplate.Message("user", "Hi!"));

    @Test
    void llama3() throws ChatTemplateException {
        ChatTemplate template = ChatTemplate.of(LLAMA_3, Map.of("bos_token", "<|begin_of_text|>"));
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", template.render(CONVERSATION));
    }

    @Test
    void chatMl() throws ChatTemplateException {
        ChatTemplate template = ChatTemplate.of(CHATML, Map.of());
        assertEquals("<|im_start|>system\n  Be brief. <|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
                template.render(CONVERSATION));
        assertEquals("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                + "<|im_start|>assistant\n", template.render(List.of(new ChatTemplate.Message("user", "Hi!"))));
    }

    @Test
    void mistralAndItsRaiseException() throws ChatTemplateException {
        ChatTemplate template = ChatTemplate.of(MISTRAL, Map.of("bos_token", "<s>", "eos_token", "</s>"));
        assertEquals("<s>[INST] Hi [/INST]Yo</s>[INST] More? [/INST]", template.render(List.of(
                new ChatTemplate.Message("user", " Hi "), new ChatTemplate.Message("assistant", "Yo"),
                new ChatTemplate.Message("user", "More?"))));
        ChatTemplateException refused = assertThrows(ChatTemplateException.class, () -> template.render(List.of(
                new ChatTemplate.Message("user", "a"), new ChatTemplate.Message("user", "b"))));
        assertTrue(refused.getMessage().endsWith("refused the messages: Conversation roles must alternate "
                + "user/assistant/user/assistant/..."), refused.getMessage());
    }

    // The expected prompts of the tests below are Jinja2 3.1's, rendered as Transformers renders them
    // (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks).

    @Test
    void gemma() throws ChatTemplateException {
        ChatTemplate template = ChatTemplate.of(GEMMA, Map.of("bos_token", "<bos>", "eos_token", "<eos>"));
        assertEquals("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
                + "<start_of_turn>user\nMore?<end_of_turn>\n<start_of_turn>model\n", template.render(List.of(
                new ChatTemplate.Message("user", " Hi "), new ChatTemplate.Message("assistant", "Yo"),
                new ChatTemplate.Message("user", "More?"))));
        ChatTemplateException refused = assertThrows(ChatTemplateException.class, () -> template.render(CONVERSATION));
        assertTrue(refused.getMessage().endsWith("refused the messages: System role not supported"), refused.getMessage());
    }

    @Test
    void phi3() throws ChatTemplateException {
        ChatTemplate template = ChatTemplate.of(PHI_3, Map.of("eos_token", "<|endoftext|>"));
        assertEquals("<|system|>\n  Be brief. <|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\nHello.<|end|>\n"
                + "<|user|>\n{% for i in range(3) %}A{% endfor %}<|end|>\n<|assistant|>\n", template.render(List.of(
                CONVERSATION.get(0), CONVERSATION.get(1), new ChatTemplate.Message("assistant", "Hello."),
                new ChatTemplate.Message("user", "{% for i in range(3) %}A{% endfor %}"))));
    }

    /** Whatever a message holds is text of the prompt, in every family's template. */
    @Test
    void messagesAreDataNeverTemplateSource() throws ChatTemplateException {
        for (String probe : List.of(LOOP_PROBE, INCLUDE_PROBE, "{{ raise_exception('no') }}", "{{ bos_token }}")) {
            List<ChatTemplate.Message> asked = List.of(new ChatTemplate.Message("user", probe));
            assertEquals("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + probe + "<|eot_id|>"
                    + "<|start_header_id|>assistant<|end_header_id|>\n\n",
                    ChatTemplate.of(LLAMA_3, Map.of("bos_token", "<|begin_of_text|>")).render(asked));
            assertEquals("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + probe
                    + "<|im_end|>\n<|im_start|>assistant\n", ChatTemplate.of(CHATML, Map.of()).render(asked));
            assertEquals("<s>[INST] " + probe + " [/INST]", ChatTemplate.of(MISTRAL, Map.of("bos_token", "<s>")).render(asked));
            assertEquals("<bos><start_of_turn>user\n" + probe + "<end_of_turn>\n<start_of_turn>model\n",
                    ChatTemplate.of(GEMMA, Map.of("bos_token", "<bos>")).render(asked));
            assertEquals("<|user|>\n" + probe + "<|end|>\n<|assistant|>\n", ChatTemplate.of(PHI_3, Map.of()).render(asked));
            assertEquals("<|user|>\n" + probe + "\n<|assistant|>\n", ChatTemplate.FALLBACK.render(asked));
        }
    }

    @Test
    void aTemplateLoadsNothing() {
        for (String loading : List.of("{% include 'application.properties' %}", "{% import 'macros.j2' as m %}",
                "{% from 'macros.j2' import m %}", "{% extends 'base.j2' %}")) {
            ChatTemplateException refused = assertThrows(ChatTemplateException.class,
                    () -> ChatTemplate.of(loading + "{{ messages[0].content }}", Map.of()).render(CONVERSATION), loading);
            assertTrue(refused.getMessage().contains("failed to render"), refused.getMessage());
        }
    }

    @Test
    void theMessagesCannotBeChanged() {
        ChatTemplateException refused = assertThrows(ChatTemplateException.class, () -> ChatTemplate.of(
                "{% do messages.append(messages[0]) %}{{ messages | length }}", Map.of()).render(CONVERSATION));
        assertTrue(refused.getMessage().contains("failed to render"), refused.getMessage());
    }

    /** Bombs in the template itself (a model directory is not trusted to be kind): each fails quickly. */
    @Test
    void aTemplateBreakingABoundFailsQuickly() {
        List<String> bombs = List.of(
                "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}{% endfor %}"
                        + "{% endfor %}{% endfor %}",
                "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
                "{% set s = 'AAAAAAAAAAAAAAAA' %}{% for i in range(64) %}{% set s = s ~ s %}{% endfor %}{{ s }}",
                "{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}{{ down(0) }}",
                "{% for a in messages %}{% for b in range(100000) %}{% for c in range(100000) %}{% endfor %}{% endfor %}{% endfor %}",
                "{{ 'x' | center(2000000000) }}",
                "{{ '%2000000000s' | format('x') }}");
        bombs.forEach(bomb -> {
            long start = System.nanoTime();
            ChatTemplateException refused = assertThrows(ChatTemplateException.class,
                    () -> ChatTemplate.of(bomb, Map.of()).render(CONVERSATION), bomb);
            long millis = (System.nanoTime() - start) / 1_000_000;
            assertTrue(refused.getMessage().contains("failed to render"), refused.getMessage());
            assertTrue(millis < ChatTemplate.MAX_RENDER_MILLIS + 3_000, bomb + " took " + millis + " ms");
        });
    }

    @Test
    void recursionWithinItsBoundRendersAsJinja2Does() throws ChatTemplateException {
        assertEquals("0 1 2 3 |   x   |   7", ChatTemplate.of("{% macro up(n) %}{% if n > 0 %}{{ up(n - 1) }}{{ ' ' }}{% endif %}"
                + "{{ n }}{% endmacro %}{{ up(3) }} | {{ 'x' | center(5) }} | {{ '%3d' | format(7) }}", Map.of())
                .render(CONVERSATION));
    }

    @Test
    void aBrokenTemplateFailsWithTheReason() {
        ChatTemplateException unclosed = assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.of("{% for message in messages %}{{ message.content }}", Map.of()).render(CONVERSATION));
        assertTrue(unclosed.getMessage().contains("endfor"), unclosed.getMessage());
        ChatTemplateException unknownFunction = assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.of("{{ tojsonish(messages) }}", Map.of()).render(CONVERSATION));
        assertTrue(unknownFunction.getMessage().contains("tojsonish"), unknownFunction.getMessage());
    }

    @Test
    void theFallbackIsTheDocumentedFormat() throws ChatTemplateException {
        assertEquals("<|system|>\n  Be brief. \n<|user|>\nHi!\n<|assistant|>\n", ChatTemplate.FALLBACK.render(CONVERSATION));
    }

    @Test
    void readsTheTokenizerConfigsTemplateAndSpecialTokens(@TempDir Path dir) throws IOException, ChatTemplateException {
        Path config = dir.resolve("tokenizer_config.json");
        assertTrue(ChatTemplate.read(config).isEmpty());
        Files.writeString(config, "{\"eos_token\": \"</s>\"}");
        assertTrue(ChatTemplate.read(config).isEmpty());

        Files.writeString(config, "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
                + " \"chat_template\": \"{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}\"}");
        assertEquals("<s>  Be brief. </s>Hi!</s>", ChatTemplate.read(config).orElseThrow().render(CONVERSATION));

        Files.writeString(config, "{\"bos_token\": \"<s>\", \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"tools\"},"
                + " {\"name\": \"default\", \"template\": \"{{ messages | length }}\"}]}");
        assertEquals("2", ChatTemplate.read(config).orElseThrow().render(CONVERSATION));

        Files.writeString(dir.resolve("chat_template.jinja"), "{{ bos_token }}{{ messages[-1].content }}");
        assertEquals("<s>Hi!", ChatTemplate.read(config).orElseThrow().render(CONVERSATION), "the .jinja file wins");
        Files.delete(dir.resolve("chat_template.jinja"));

        Files.writeString(config, "{\"chat_template\": 7}");
        IOException wrongShape = assertThrows(IOException.class, () -> ChatTemplate.read(config));
        assertTrue(wrongShape.getMessage().contains("chat_template must be"), wrongShape.getMessage());
    }
}
