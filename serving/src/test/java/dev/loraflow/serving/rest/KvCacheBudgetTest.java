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

/**
 * A KV cache budget with room for one request of 3 + 60 tokens (the tiny GPT-2 keeps 512 bytes a token: 32,256 bytes),
 * a batch and a queue with room for eight: a burst of eight clients gets 429 saying the KV cache is full
 * instead of running out of memory, and the rest their answers; a request that could never fit is a 400.
 */
@QuarkusTest
@TestProfile(KvCacheBudgetTest.SmallKvCache.class)
class KvCacheBudgetTest {

    public static class SmallKvCache extends ServingProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> overrides = new HashMap<>(super.getConfigOverrides());
            overrides.put("loraflow.serving.max-batch-size", "8");
            overrides.put("loraflow.serving.queue-capacity", "8");
            overrides.put("loraflow.serving.kv-cache-bytes", "32500");
            overrides.put("loraflow.serving.retry-after-seconds", "2");
            return overrides;
        }
    }

    @Test
    void requestsBeyondTheKvCacheBudgetAnswer429AndTheOthersComplete() throws Exception {
        ExecutorService clients = Executors.newFixedThreadPool(8);
        try {
            List<Callable<Response>> burst = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                burst.add(() -> given().contentType("application/json")
                        .body("{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 60, \"temperature\": 0}")
                        .post("/v1/completions"));
            }
            int refused = 0;
            int answered = 0;
            for (Future<Response> future : clients.invokeAll(burst)) {
                Response response = future.get();
                if (response.statusCode() == 429) {
                    refused++;
                    assertEquals("2", response.header("Retry-After"));
                    assertEquals("server_overloaded", response.jsonPath().getString("error.code"));
                    assertTrue(response.jsonPath().getString("error.message").contains("KV cache is full"),
                            response.asString());
                } else {
                    assertEquals(200, response.statusCode(), response.asString());
                    assertEquals(60, response.jsonPath().getList("choices[0].token_ids").size());
                    answered++;
                }
            }
            assertTrue(refused > 0, "eight requests at once with room for one: " + refused + " refused");
            assertTrue(answered > 0);
        } finally {
            clients.shutdownNow();
        }
    }

    @Test
    void aRequestLargerThanTheWholeBudgetIsInvalid() {
        Response response = given().contentType("application/json")
                .body("{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 61, \"temperature\": 0}")
                .post("/v1/completions");
        // 64 tokens of 512 bytes: more than the 32500 bytes the server has at all.
        assertEquals(400, response.statusCode(), response.asString());
        assertTrue(response.jsonPath().getString("error.message").contains("KV cache"), response.asString());
    }
}
