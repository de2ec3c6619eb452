package dev.loraflow.serving.rest;

import dev.loraflow.serving.TemporaryDirectoryResource;
import dev.loraflow.serving.service.Requests;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.inference.ChatTemplate;
import dev.loraflow.inference.TinyModels;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * A tiny GPT-2 (model A's weights, a context of 256) served with a ChatML chat_template in its
 * tokenizer_config.json: the chat prompt is that template's rendering (the config's BOS first), a
 * conversation the template refuses is a 400, messages that look like template code are text, and the
 * template's own bomb is stopped.
 */
@QuarkusTest
@TestProfile(ChatTemplateApiTest.WithChatTemplate.class)
class ChatTemplateApiTest {

    /**
     * ChatML that begins with the BOS token and raises when two messages in a row share a role; and a
     * bomb, 10^10 empty loop iterations, when the first message is "boom".
     */
    static final String TEMPLATE = """
            {%- if messages[0].content == 'boom' %}
                {%- for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}
            {%- endif %}
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

    /** Model A's weights with room for the probes: a context of 256. */
    static final Gpt2Config WIDE = new Gpt2Config(ByteLevelTokenizerJson.VOCAB_SIZE, 256, 32, 2, 4, 64, 1e-5);

    /** The model exported with the template added to its tokenizer_config.json. */
    public static class ModelWithChatTemplate extends TemporaryDirectoryResource {
        @Override
        protected Map<String, String> start(Path dir) throws IOException {
            Path onnx = TinyModels.export(TinyModels.model(WIDE, TinyModelResource.SEED_A),
                    TinyModels.weights(WIDE, TinyModelResource.SEED_A), dir);
            Path config = dir.resolve("tokenizer_config.json");
            ObjectMapper json = new ObjectMapper();
            ObjectNode root = (ObjectNode) json.readTree(config.toFile());
            root.put("chat_template", TEMPLATE);
            json.writeValue(config.toFile(), root);
            return Map.of("loraflow.serving.model.path", onnx.toString());
        }
    }

    @Test
    void thePromptIsTheTemplatesRendering() {
        answersTheRenderedPrompt("Hi");
    }

    /** Issue 15's probes: a loop and an include in a message are its text, not run (no 50 A's, no server file). */
    @Test
    void messagesThatLookLikeTemplateCodeAreText() {
        answersTheRenderedPrompt("{% for i in range(50) %}A{% endfor %}");
        answersTheRenderedPrompt("{% include 'application.properties' %}");
    }

    /** One user message: the prompt is the BOS and the template's ChatML, the message as written, and the answer the Java model's. */
    private static void answersTheRenderedPrompt(String content) {
        String rendered = "<|im_start|>user\n" + content + "<|im_end|>\n<|im_start|>assistant\n";
        int[] text = OpenAiApiTest.bytes(rendered);
        int[] prompt = IntStream.concat(IntStream.of(ByteLevelTokenizerJson.END_OF_TEXT_ID), IntStream.of(text)).toArray();
        GenerationResult expected = Generator.generate(TinyModels.model(WIDE, TinyModelResource.SEED_A), prompt,
                SamplingSettings.greedy(6, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID)));
        ObjectNode body = Requests.JSON.createObjectNode().put("model", "tiny").put("max_tokens", 6).put("temperature", 0);
        body.putArray("messages").addObject().put("role", "user").put("content", content);
        JsonPath json = given().contentType("application/json").body(body.toString()).post("/v1/chat/completions")
                .then().statusCode(200).extract().jsonPath();
        assertEquals(prompt.length, json.getInt("usage.prompt_tokens"), content);
        assertEquals(OpenAiApiTest.text(expected.tokens()), json.getString("choices[0].message.content"), content);
    }

    /** The template's bomb ends at a bound of the rendering: a 400 within the render-time bound, and the server goes on serving. */
    @Test
    void aTemplateBombIsStoppedQuickly() {
        answersTheRenderedPrompt("Hi"); // the client's first request loads its classes: not part of the time
        long start = System.nanoTime();
        given().contentType("application/json").body("""
                {"model": "tiny", "messages": [{"role": "user", "content": "boom"}], "max_tokens": 2}""")
                .post("/v1/chat/completions").then().statusCode(400).body("error.code", equalTo("chat_template_failed"))
                .body("error.type", equalTo("invalid_request_error")).body("error.param", equalTo("messages"))
                .body("error.message", containsString("failed to render: "));
        long millis = (System.nanoTime() - start) / 1_000_000;
        // Unbounded, the bomb would run for hours; the slack is for a machine shared by many builds.
        assertTrue(millis < ChatTemplate.MAX_RENDER_MILLIS + 8_000, "the bomb was answered after " + millis + " ms");
        answersTheRenderedPrompt("Hi");
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
