package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.RestAssured;
import io.restassured.response.Response;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Bodies built to hurt, on the OpenAI and KServe REST endpoints: wrong JSON types, numbers beyond any range,
 * non-numbers, nesting and numbers beyond the parser's limits, duplicate keys, a body of unknown length over the
 * limit. Each is a 4xx naming the field where there is one, in words of JSON, never the binder's class names, and
 * never echoing a large value back; the server answers normally afterwards.
 */
@QuarkusTest
@TestProfile(ServingProfile.class)
class HostileBodiesTest {

    private static Response post(String path, String body) {
        return given().contentType("application/json").body(body).when().post(path);
    }

    /** The refusal, in OpenAI's shape, with the message in the client's words only; its message. */
    private static String assertRefused(Response response, int status, String param, String code) {
        String message = response.then().statusCode(status).body("error.code", equalTo(code))
                .body("error.param", equalTo(param)).extract().jsonPath().getString("error.message");
        assertPlainWords(message);
        return message;
    }

    private static void assertPlainWords(String message) {
        for (String binderWords : List.of("com.fasterxml", "java.lang", "java.util", "Exception", "`", "dev.loraflow",
                "Source:", "$")) {
            assertFalse(message.contains(binderWords), binderWords + " in: " + message);
        }
        assertTrue(message.length() < 400, "a short message, not an echo: " + message.length() + " characters");
    }

    private static String completion(String fields) {
        return "{\"model\": \"tiny\", \"prompt\": \"x\", \"max_tokens\": 2, " + fields + "}";
    }

    @Test
    void wrongJsonTypesAreRefusedNamingTheField() {
        assertRefused(post("/v1/completions", "{\"model\": 5, \"prompt\": \"x\"}"), 400, "model", "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": {\"name\": \"tiny\"}, \"prompt\": \"x\"}"), 400, "model",
                "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": {\"text\": \"x\"}}"), 400, "prompt",
                "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": [1, 2.5]}"), 400, "prompt",
                "invalid_parameter");
        assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": [[1, 2]]}"), 400, "prompt",
                "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"max_tokens\": \"10\"").replace("\"max_tokens\": 2, ", "")),
                400, "max_tokens", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"stream\": \"true\"")), 400, "stream", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"stream\": true, \"stream_options\": {\"include_usage\": 1}")),
                400, "stream_options.include_usage", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"stop\": {\"a\": 1}")), 400, "stop", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"stop\": [\"a\", 1]")), 400, "stop", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"logprobs\": 3")), 400, "logprobs", "invalid_parameter");
        for (String notAMessage : List.of("1", "\"hi\"", "null", "[]")) {
            assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [" + notAMessage + "]}"), 400,
                    "messages[0]", "invalid_parameter");
        }
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": {\"role\": \"user\"}}"), 400,
                "messages", "invalid_parameter");
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": 5}]}"),
                400, "messages[0].content", "invalid_parameter");
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\"}]}"),
                400, "messages[0].content", "invalid_parameter");
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}],"
                + " \"max_completion_tokens\": \"4\"}"), 400, "max_completion_tokens", "invalid_parameter");
        post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"ok\", \"max_tokens\": 2}").then().statusCode(200);
    }

    @Test
    void numbersBeyondTheirRangeAndNonNumbersAreRefused() {
        for (String maxTokens : List.of("1e99", "2.5", "99999999999", "-99999999999", "true", "[3]")) {
            String message = assertRefused(post("/v1/completions", completion("\"max_tokens\": " + maxTokens)
                    .replace("\"max_tokens\": 2, ", "")), 400, "max_tokens", "invalid_parameter");
            assertTrue(message.startsWith("max_tokens must be"), message);
        }
        for (String temperature : List.of("\"NaN\"", "\"Infinity\"", "1e999", "-1e999", "\"0.5\"")) {
            assertRefused(post("/v1/completions", completion("\"temperature\": " + temperature)), 400, "temperature",
                    "invalid_parameter");
        }
        assertRefused(post("/v1/completions", completion("\"top_p\": \"NaN\"")), 400, "top_p", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"seed\": 123456789012345678901234567890")), 400, "seed",
                "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"seed\": 1e30")), 400, "seed", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"top_k\": 1e10")), 400, "top_k", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"n\": 99999999999")), 400, "n", "invalid_parameter");
        post("/v1/completions", completion("\"seed\": -9223372036854775808, \"top_k\": -1")).then().statusCode(200);
    }

    @Test
    void whatTheParserRefusesIsInvalidJsonInPlainWords() {
        assertRefused(post("/v1/completions", completion("\"temperature\": NaN")), 400, null, "invalid_json");
        String duplicate = assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"model\": \"other\", \"prompt\": \"x\"}"),
                400, null, "invalid_json");
        assertTrue(duplicate.contains("Duplicate field 'model'"), duplicate);
        String deep = "{\"model\": \"tiny\", \"prompt\": " + "[".repeat(20_000) + "]".repeat(20_000) + "}";
        assertRefused(post("/v1/completions", deep), 400, null, "invalid_json");
        String longNumber = completion("\"seed\": 1" + "0".repeat(5_000));
        assertRefused(post("/v1/completions", longNumber), 400, null, "invalid_json");
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}"),
                400, null, "invalid_json");
    }

    @Test
    void aLargeWrongValueIsNotEchoedBack() {
        String large = "a".repeat(50_000);
        String message = assertRefused(post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": [\"" + large + "\", 1]}"),
                400, "prompt", "invalid_parameter");
        assertFalse(message.contains(large.substring(0, 100)), message);
        assertRefused(post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"" + large
                + "\", \"content\": \"x\"}]}"), 400, "messages[0].role", "invalid_parameter");
        assertRefused(post("/v1/completions", completion("\"stop\": {\"a\": \"" + large + "\"}")), 400, "stop",
                "invalid_parameter");
    }

    @Test
    void unknownFieldsAreIgnoredAsOpenAiIgnoresThem() {
        post("/v1/completions", completion("\"user\": \"u\", \"frequency_penalty\": 0, \"extra\": {\"deep\": [1, {\"x\": null}]}"))
                .then().statusCode(200).body("choices[0].finish_reason", org.hamcrest.Matchers.notNullValue());
        post("/v1/chat/completions", "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\", \"name\": \"a\"}],"
                + " \"max_completion_tokens\": 2, \"response_format\": {\"type\": \"text\"}}").then().statusCode(200)
                .body("usage.completion_tokens", org.hamcrest.Matchers.lessThanOrEqualTo(2));
    }

    /**
     * A body over the limit: declared so (ten megabytes, none of it sent), refused from its length; sent without a
     * length (chunked), refused once the limit is passed.
     */
    @Test
    void aBodyOverTheLimitIsRefusedWhateverItsFraming() throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        byte[] overTheLimit = ("{\"model\": \"tiny\", \"prompt\": \"" + "a".repeat(ServingProfile.MAX_BODY_BYTES) + "\"}")
                .getBytes(StandardCharsets.UTF_8);
        for (String path : List.of("/v1/completions", "/v1/chat/completions", "/v2/models/tiny/infer")) {
            try (RawHttp exchange = RawHttp.send("POST", path, Map.of("Content-Type", "application/json"),
                    10L << 20, new byte[0], Duration.ofSeconds(30))) {
                assertEquals(413, exchange.status(), path);
            }
            HttpRequest chunked = HttpRequest.newBuilder(URI.create("http://localhost:" + RestAssured.port + path))
                    .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(overTheLimit))).build();
            assertEquals(413, client.send(chunked, HttpResponse.BodyHandlers.discarding()).statusCode(), path);
        }
        post("/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"ok\", \"max_tokens\": 2}").then().statusCode(200);
    }

    @Test
    void kserveBodiesAreBoundOnceTheModelIsFound() {
        String ids = "{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [1]}";
        for (String body : List.of("{\"inputs\": [1]}", "{\"inputs\": {\"name\": \"input_ids\"}}",
                "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1.5], \"datatype\": \"INT64\", \"data\": [1]}]}",
                "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": 1}]}",
                "{\"inputs\": [" + ids + "], \"parameters\": 5}",
                "{\"inputs\": [" + ids + "], \"parameters\": {\"max_tokens\": \"5\"}}",
                "{\"inputs\": [" + ids + "], \"parameters\": {\"temperature\": \"NaN\"}}",
                "{\"inputs\": [" + ids + "], \"parameters\": {\"seed\": 1e40}}",
                "{\"inputs\": [" + ids + "], \"outputs\": [{\"name\": 5}]}",
                "{\"inputs\": [" + ids + "], \"outputs\": [null]}",
                "{\"id\": {\"a\": 1}, \"inputs\": [" + ids + "]}")) {
            String error = post("/v2/models/tiny/infer", body).then().statusCode(400).extract().jsonPath().getString("error");
            assertPlainWords(error);
        }
        post("/v2/models/tiny/infer", "{\"inputs\": [" + ids + "], \"parameters\": {\"max_tokens\": \"5\"}}").then()
                .body("error", containsString("max_tokens must be an integer"));
        // The model is resolved before the body is read: an unknown model is a 404 whatever the body.
        for (String body : List.of("not json", "{\"inputs\": 5}", "{\"parameters\": {\"max_tokens\": -1}}")) {
            post("/v2/models/nope/infer", body).then().statusCode(404).body("error", containsString("nope"));
        }
        post("/v2/models/tiny/infer", "{\"inputs\": [" + ids + "], \"parameters\": {\"max_tokens\": 2}, \"extra\": true}")
                .then().statusCode(200);
    }
}
