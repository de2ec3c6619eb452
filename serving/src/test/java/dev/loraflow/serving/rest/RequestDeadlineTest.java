package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A deadline no generation can meet (1 ms for 40 tokens): every request ends with a 504 in OpenAI's shape
 * (or, streamed, an error event), counted as timed_out, and leaves the engine.
 */
@QuarkusTest
@TestProfile(RequestDeadlineTest.OneMillisecond.class)
class RequestDeadlineTest {

    public static class OneMillisecond extends ServingProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> overrides = new HashMap<>(super.getConfigOverrides());
            overrides.put("loraflow.serving.request-timeout", "PT0.001S");
            return overrides;
        }
    }

    private static final String REQUEST = "{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 40, \"temperature\": 0%s}";

    @Inject
    MeterRegistry meters;

    private double timedOut() {
        return meters.counter("loraflow.requests", "api", "openai_completions", "outcome", "timed_out").count();
    }

    @Test
    void aRequestPastItsDeadlineAnswers504() {
        double before = timedOut();
        given().contentType("application/json").body(REQUEST.formatted("")).post("/v1/completions").then().statusCode(504)
                .body("error.type", equalTo("timeout_error")).body("error.code", equalTo("request_timeout"))
                .body("error.message", containsString("loraflow.serving.request-timeout"));
        assertEquals(before + 1, timedOut());
    }

    @Test
    void aStreamPastItsDeadlineEndsWithAnErrorEvent() {
        double before = timedOut();
        String events = given().contentType("application/json").body(REQUEST.formatted(", \"stream\": true"))
                .post("/v1/completions").then().statusCode(200).extract().asString();
        assertTrue(events.contains("\"code\":\"request_timeout\""), events);
        assertTrue(events.contains("\"type\":\"timeout_error\""), events);
        assertTrue(events.endsWith("data: [DONE]\n\n"), events);
        assertEquals(before + 1, timedOut());
    }
}
