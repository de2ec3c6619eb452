package dev.loraflow.serving.rest;

import dev.loraflow.serving.service.ApiError;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.loraflow.inference.GenerationRequest;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * What is refused before it costs anything: bodies over the limit and admin requests without a key are
 * answered from their headers alone (the body is never sent here, so an answer proves nothing waited for
 * it), and stop sequences beyond the bound.
 */
@QuarkusTest
@TestProfile(ServingProfile.class)
class RequestLimitsTest {

    private static final Duration PATIENCE = Duration.ofSeconds(30);

    @Test
    void aBodyOverTheLimitIsRefusedFromItsLengthBeforeAByteIsRead() throws Exception {
        for (String path : java.util.List.of("/v1/completions", "/v1/chat/completions", "/admin/models")) {
            try (RawHttp exchange = RawHttp.send("POST", path, Map.of("Content-Type", "application/json",
                    "X-API-Key", ServingProfile.API_KEY), 16L << 20, new byte[0], PATIENCE)) {
                assertEquals(413, exchange.status(), path);
            }
        }
    }

    @Test
    void theAdminKeyIsCheckedBeforeTheBodyIsRead() throws Exception {
        for (Map<String, String> headers : java.util.List.of(Map.<String, String>of(), Map.of("X-API-Key", "wrong"),
                Map.of("Authorization", "Bearer wrong"))) {
            try (RawHttp exchange = RawHttp.send("POST", "/admin/models", headers, 60_000, new byte[0], PATIENCE)) {
                assertEquals(401, exchange.status(), headers.toString());
            }
        }
    }

    @Test
    void stopSequencesAreBoundedInLength() {
        String tooLong = "s".repeat(GenerationRequest.MAX_STOP_CHARS + 1);
        given().contentType("application/json").body("{\"model\": \"tiny\", \"prompt\": \"Hi\", \"max_tokens\": 2,"
                + " \"stop\": [\"a\", \"" + tooLong + "\"]}").post("/v1/completions").then().statusCode(400)
                .body("error.param", equalTo("stop")).body("error.type", equalTo("invalid_request_error"))
                .body("error.message", containsString("at most " + GenerationRequest.MAX_STOP_CHARS + " characters"));
        String longest = "s".repeat(GenerationRequest.MAX_STOP_CHARS);
        given().contentType("application/json").body("{\"model\": \"tiny\", \"prompt\": \"Hi\", \"max_tokens\": 2,"
                + " \"stop\": \"" + longest + "\"}").post("/v1/completions").then().statusCode(200);
    }

    /** Issue 14: a server's failure is typed as one, a client's mistake as one. */
    @Test
    void errorTypesFollowWhoseFaultItIs() {
        assertEquals("server_error", new ApiError(500, "failed", null, "server_error").type());
        assertEquals("timeout_error", new ApiError(504, "late", null, "request_timeout").type());
        assertEquals("invalid_request_error", new ApiError(400, "bad", "n", "invalid_parameter").type());
    }
}
