package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.inference.TinyModels;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Model A served with a ChatML chat_template in its tokenizer_config.json: the chat prompt is that
 * template's rendering (the config's BOS first), and a conversation the template refuses is a 400.
 */
@QuarkusTest
@TestProfile(ChatTemplateApiTest.WithChatTemplate.class)
class ChatTemplateApiTest {

    /** ChatML that begins with the BOS token and raises when two messages in a row share a role. */
    static final String TEMPLATE = """
            {{- bos_token }}
            {%- for message in messages %}
                {%- if loop.index0 > 0 and message.role == messages[loop.index0 - 1].role %}
                    {{- raise_exception('roles must alternate; messages ' ~ (loop.index0 - 1) ~ ' and ' ~ loop.index0 ~ ' are both ' ~ message.role) }}
                {%- endif %}
                {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
            {%- endfor %}
            {%- if add_generation_prompt %}
                {{- '<|im_start|>assistant\\n' }}
            {%- endif %}
            """;

    public static class WithChatTemplate extends ServingProfile {
        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(ModelWithChatTemplate.class));
        }
    }

    /** Model A exported with the template added to its tokenizer_config.json. */
    public static class ModelWithChatTemplate implements QuarkusTestResourceLifecycleManager {
        @Override
        public Map<String, String> start() {
            try {
                Path dir = Files.createTempDirectory("loraflow-chat-template-test");
                Path onnx = TinyModels.export(TinyModelResource.javaModel(TinyModelResource.SEED_A),
                        TinyModels.weights(TinyModels.GPT2, TinyModelResource.SEED_A), dir);
                Path config = dir.resolve("tokenizer_config.json");
                ObjectMapper json = new ObjectMapper();
                ObjectNode root = (ObjectNode) json.readTree(config.toFile());
                root.put("chat_template", TEMPLATE);
                json.writeValue(config.toFile(), root);
                return Map.of("loraflow.serving.model.path", onnx.toString());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        public void stop() {}
    }

    @Test
    void thePromptIsTheTemplatesRendering() {
        // The tiny model's context is 64 tokens: one short message.
        String rendered = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        int[] text = OpenAiApiTest.bytes(rendered);
        int[] prompt = IntStream.concat(IntStream.of(ByteLevelTokenizerJson.END_OF_TEXT_ID), IntStream.of(text)).toArray();
        GenerationResult expected = OpenAiApiTest.expected(prompt, 6);
        JsonPath json = given().contentType("application/json").body("""
                {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
                 "max_tokens": 6, "temperature": 0}""").post("/v1/chat/completions").then().statusCode(200)
                .extract().jsonPath();
        assertEquals(prompt.length, json.getInt("usage.prompt_tokens"));
        assertEquals(OpenAiApiTest.text(expected.tokens()), json.getString("choices[0].message.content"));
    }

    @Test
    void aConversationTheTemplateRefusesIsABadRequest() {
        given().contentType("application/json").body("""
                {"model": "tiny", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}""")
                .post("/v1/chat/completions").then().statusCode(400).body("error.code", equalTo("chat_template_failed"))
                .body("error.type", equalTo("invalid_request_error")).body("error.param", equalTo("messages"))
                .body("error.message", containsString("roles must alternate; messages 0 and 1 are both user"));
    }
}
