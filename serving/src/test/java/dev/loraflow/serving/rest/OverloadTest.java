package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.response.Response;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** A batch of one and a queue of one: a burst of clients gets 429 with Retry-After, and the rest their answers. */
@QuarkusTest
@TestProfile(OverloadTest.TinyQueue.class)
class OverloadTest {

    public static class TinyQueue extends ServingProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> overrides = new HashMap<>(super.getConfigOverrides());
            overrides.put("loraflow.serving.max-batch-size", "1");
            overrides.put("loraflow.serving.queue-capacity", "1");
            overrides.put("loraflow.serving.retry-after-seconds", "2");
            return overrides;
        }
    }

    @Test
    void aFullQueueAnswers429WithRetryAfter() throws Exception {
        ExecutorService clients = Executors.newFixedThreadPool(16);
        try {
            List<Callable<Response>> burst = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                burst.add(() -> given().contentType("application/json")
                        .body("{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 60, \"temperature\": 0}")
                        .post("/v1/completions"));
            }
            int overloaded = 0;
            int answered = 0;
            for (Future<Response> future : clients.invokeAll(burst)) {
                Response response = future.get();
                if (response.statusCode() == 429) {
                    overloaded++;
                    assertEquals("2", response.header("Retry-After"));
                    assertEquals("rate_limit_error", response.jsonPath().getString("error.type"));
                    assertEquals("server_overloaded", response.jsonPath().getString("error.code"));
                } else {
                    assertEquals(200, response.statusCode(), response.asString());
                    answered++;
                }
            }
            assertTrue(overloaded > 0, "16 clients at once against a batch of 1 and a queue of 1");
            assertTrue(answered > 0);
        } finally {
            clients.shutdownNow();
        }
    }
}
