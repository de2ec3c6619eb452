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
