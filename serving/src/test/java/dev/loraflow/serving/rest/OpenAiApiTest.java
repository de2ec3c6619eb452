package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import io.restassured.response.Response;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The OpenAI-compatible API on tiny model A: answers equal core's Generator; every bad input refused in OpenAI's shape. */
@QuarkusTest
@TestProfile(ServingProfile.class)
class OpenAiApiTest {

    static int[] bytes(String text) {
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            ids[i] = utf8[i] & 0xff;
        }
        return ids;
    }

    /** Core's greedy answer on model A, stopping at end-of-text as the server does. */
    static GenerationResult expected(int[] prompt, int maxTokens) {
        return Generator.generate(TinyModelResource.javaModel(TinyModelResource.SEED_A), prompt,
                SamplingSettings.greedy(maxTokens, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID)));
    }

    static String text(int[] generated) {
        int end = generated.length;
        if (end > 0 && generated[end - 1] == ByteLevelTokenizerJson.END_OF_TEXT_ID) {
            end--;
        }
        byte[] utf8 = new byte[end];
        for (int i = 0; i < end; i++) {
            utf8[i] = (byte) generated[i];
        }
        return new String(utf8, StandardCharsets.UTF_8);
    }

    static List<Integer> list(int[] ids) {
        return Arrays.stream(ids).boxed().toList();
    }

    private static Response post(String path, String body) {
        return given().contentType("application/json").body(body).when().post(path);
    }

    @Test
    void modelsListsTheServedModel() {
        given().when().get("/v1/models").then().statusCode(200).body("object", equalTo("list"))
                .body("data.id", hasItem("tiny")).body("data[0].object", equalTo("model"));
    }

    @Test
    void greedyCompletionOfTextEqualsTheJavaGenerator() {
        GenerationResult expected = expected(bytes("Hello"), 12);
        JsonPath json = post("/v1/completions", """
                {"model": "tiny", "prompt": "Hello", "max_tokens": 12, "temperature": 0}""")
                .then().statusCode(200).extract().jsonPath();
        assertEquals("text_completion", json.getString("object"));
        assertTrue(json.getString("id").startsWith("cmpl-"));
        assertEquals("tiny", json.getString("model"));
        assertEquals(list(expected.tokens()), json.getList("choices[0].token_ids", Integer.class));
        assertEquals(text(expected.tokens()), json.getString("choices[0].text"));
        assertEquals(expected.finishReason() == GenerationResult.FinishReason.STOP ? "stop" : "length",
                json.getString("choices[0].finish_reason"));
        assertEquals(5, json.getInt("usage.prompt_tokens"));
        assertEquals(expected.tokens().length, json.getInt("usage.completion_tokens"));
        assertEquals(5 + expected.tokens().length, json.getInt("usage.total_tokens"));
    }

    @Test
    void tokenIdPromptsWork() {
        int[] prompt = {1, 2, 3, 200, 7};
        GenerationResult expected = expected(prompt, 9);
        JsonPath json = post("/v1/completions", """
                {"model": "tiny", "prompt": [1, 2, 3, 200, 7], "max_tokens": 9, "temperature": 0}""")
                .then().statusCode(200).extract().jsonPath();
        assertEquals(list(expected.tokens()), json.getList("choices[0].token_ids", Integer.class));
    }

    @Test
    void chatCompletionUsesTheDocumentedTemplate() {
        int[] prompt = bytes("<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n");
        GenerationResult expected = expected(prompt, 10);
        JsonPath json = post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                 "max_tokens": 10, "temperature": 0}""").then().statusCode(200).extract().jsonPath();
        assertEquals("chat.completion", json.getString("object"));
        assertEquals("assistant", json.getString("choices[0].message.role"));
        assertEquals(text(expected.tokens()), json.getString("choices[0].message.content"));
        assertEquals(prompt.length, json.getInt("usage.prompt_tokens"));
    }

    /** The data lines of an SSE body, checking its framing. */
    static List<String> events(String body) {
        assertTrue(body.endsWith("data: [DONE]\n\n"), body);
        List<String> events = new ArrayList<>();
        for (String event : body.split("\n\n")) {
            assertTrue(event.startsWith("data: "), event);
            events.add(event.substring("data: ".length()));
        }
        return events;
    }

    @Test
    void streamedCompletionAddsUpToTheWholeAnswerWithUsageAtTheEnd() {
        GenerationResult expected = expected(bytes("Stream me"), 20);
        Response response = post("/v1/completions", """
                {"model": "tiny", "prompt": "Stream me", "max_tokens": 20, "temperature": 0, "stream": true,
                 "stream_options": {"include_usage": true}}""");
        response.then().statusCode(200).header("Content-Type", containsString("text/event-stream"));
        List<String> events = events(response.asString());
        assertEquals("[DONE]", events.getLast());
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        for (String event : events.subList(0, events.size() - 2)) {
            JsonPath chunk = JsonPath.from(event);
            assertEquals("text_completion", chunk.getString("object"));
            text.append(chunk.getString("choices[0].text"));
            ids.addAll(chunk.getList("choices[0].token_ids", Integer.class));
        }
        assertEquals(text(expected.tokens()), text.toString());
        assertEquals(list(expected.tokens()), ids);
        JsonPath last = JsonPath.from(events.get(events.size() - 3));
        assertEquals(expected.finishReason() == GenerationResult.FinishReason.STOP ? "stop" : "length",
                last.getString("choices[0].finish_reason"));
        JsonPath usage = JsonPath.from(events.get(events.size() - 2));
        assertEquals(0, usage.getList("choices").size());
        assertEquals(expected.tokens().length, usage.getInt("usage.completion_tokens"));
    }

    @Test
    void streamedChatSendsTheRoleThenTheContent() {
        int[] prompt = bytes("<|user|>\nHi\n<|assistant|>\n");
        GenerationResult expected = expected(prompt, 15);
        Response response = post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 15, "temperature": 0,
                 "stream": true}""");
        response.then().statusCode(200);
        List<String> events = events(response.asString());
        JsonPath first = JsonPath.from(events.getFirst());
        assertEquals("chat.completion.chunk", first.getString("object"));
        assertEquals("assistant", first.getString("choices[0].delta.role"));
        StringBuilder content = new StringBuilder();
        for (String event : events.subList(0, events.size() - 1)) {
            String piece = JsonPath.from(event).getString("choices[0].delta.content");
            content.append(piece == null ? "" : piece);
        }
        assertEquals(text(expected.tokens()), content.toString());
    }

    @Test
    void stopSequencesCutTheAnswer() {
        GenerationResult expected = expected(bytes("Hello"), 30);
        String full = text(expected.tokens());
        String stop = full.substring(4, 6);
        String body;
        try {
            body = new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(Map.of("model", "tiny",
                    "prompt", "Hello", "max_tokens", 30, "temperature", 0, "stop", List.of(stop)));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        JsonPath json = post("/v1/completions", body)
                .then().statusCode(200).extract().jsonPath();
        assertEquals(full.substring(0, full.indexOf(stop)), json.getString("choices[0].text"));
        assertEquals("stop", json.getString("choices[0].finish_reason"));
    }

    @Test
    void seededSamplingIsRepeatable() {
        String body = """
                {"model": "tiny", "prompt": "abc", "max_tokens": 15, "temperature": 0.9, "top_k": 50, "top_p": 0.95, "seed": 7}""";
        List<Integer> first = post("/v1/completions", body).then().statusCode(200).extract().jsonPath()
                .getList("choices[0].token_ids", Integer.class);
        List<Integer> second = post("/v1/completions", body).then().statusCode(200).extract().jsonPath()
                .getList("choices[0].token_ids", Integer.class);
        assertEquals(first, second);
        GenerationResult expected = Generator.generate(TinyModelResource.javaModel(TinyModelResource.SEED_A), bytes("abc"),
                new SamplingSettings(15, 0.9, 50, 0.95, 7, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID)));
        assertEquals(list(expected.tokens()), first);
    }

    private static void assertRefused(Response response, int status, String param, String code) {
        response.then().statusCode(status).body("error.message", org.hamcrest.Matchers.notNullValue())
                .body("error.type", org.hamcrest.Matchers.notNullValue()).body("error.code", equalTo(code))
                .body("error.param", equalTo(param));
    }

    @Test
    void everyBadInputIsRefusedInOpenAisErrorShape() {
        assertRefused(post("/v1/completions", "{\"prompt\": \"x\"}"), 400, "model", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"nope\", \"prompt\": \"x\"}"), 404, "model", "model_not_found");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": "), 400, null, "invalid_json");
        assertRefused(post("/v1/completions", "[1, 2]"), 400, null, "invalid_json");
        assertRefused(post("/v1/completions", ""), 400, null, "invalid_body");
        byte[] badUtf8 = "{\"model\": \"tiny\", \"prompt\": \"x\u00ff\"}".getBytes(StandardCharsets.ISO_8859_1);
        assertRefused(given().contentType("application/json").body(badUtf8).when().post("/v1/completions"), 400, null,
                "invalid_utf8");
        String huge = "{\"model\": \"tiny\", \"prompt\": \"" + "a".repeat(ServingProfile.MAX_BODY_BYTES) + "\"}";
        // Refused by the HTTP layer from its length, unread: a bare 413 (RequestLimitsTest sends no body at all).
        post("/v1/completions", huge).then().statusCode(413);
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"" + "a".repeat(64) + "\"}"), 400,
                "prompt", "context_length_exceeded");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"" + "a".repeat(60) + "\", \"max_tokens\": 10}"),
                400, "max_tokens", "context_length_exceeded");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"max_tokens\": 0}"), 400,
                "max_tokens", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"max_tokens\": \"5\"}"), 400,
                "max_tokens", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"temperature\": 3}"), 400,
                "temperature", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"top_p\": 0}"), 400,
                "top_p", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"top_k\": -2}"), 400,
                "top_k", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"seed\": 1.5}"), 400,
                "seed", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}"),
                400, "stop", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"stop\": \"\"}"), 400,
                "stop", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"x\", \"n\": 2}"), 400, "n",
                "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": [1, 300]}"), 400, "prompt",
                "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"\"}"), 400, "prompt",
                "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": {}}"), 400, "prompt",
                "invalid_parameter");
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": []}"), 400, "messages",
                "invalid_parameter");
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}"),
                400, "messages[0].role", "invalid_parameter");
        // The server still answers after all of that: no lease was lost.
        post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"ok\", \"max_tokens\": 2}").then().statusCode(200);
    }
}
