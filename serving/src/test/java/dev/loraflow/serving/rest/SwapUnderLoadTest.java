package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import io.restassured.response.Response;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/** Swaps between models A and B while clients keep asking: no request fails and each answer is wholly one version's. */
@QuarkusTest
@TestProfile(ServingProfile.class)
class SwapUnderLoadTest {

    @Test
    void repeatedSwapsUnderLoadFailNoRequest() throws Exception {
        int[] prompt = {5, 6, 7, 8, 9};
        SamplingSettings greedy = SamplingSettings.greedy(24, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID));
        List<Integer> expectedA = OpenAiApiTest.list(Generator.generate(
                TinyModelResource.javaModel(TinyModelResource.SEED_A), prompt, greedy).tokens());
        List<Integer> expectedB = OpenAiApiTest.list(Generator.generate(
                TinyModelResource.javaModel(TinyModelResource.SEED_B), prompt, greedy).tokens());
        assertTrue(!expectedA.equals(expectedB));
        String pathA = ConfigProvider.getConfig().getValue("loraflow.test.model-a", String.class);
        String pathB = ConfigProvider.getConfig().getValue("loraflow.test.model-b", String.class);
        Map<String, List<Integer>> expectedByVersion = new ConcurrentHashMap<>();
        expectedByVersion.put(given().get("/v2/models/tiny").then().extract().jsonPath().getString("versions[0]"), expectedA);

        AtomicBoolean running = new AtomicBoolean(true);
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        ConcurrentLinkedQueue<JsonPath> answers = new ConcurrentLinkedQueue<>();
        ExecutorService clients = Executors.newFixedThreadPool(4);
        List<Future<?>> loops = new java.util.ArrayList<>();
        for (int c = 0; c < 4; c++) {
            loops.add(clients.submit(() -> {
                while (running.get()) {
                    Response response = given().contentType("application/json")
                            .body("{\"model\": \"tiny\", \"prompt\": [5, 6, 7, 8, 9], \"max_tokens\": 24, \"temperature\": 0}")
                            .post("/v1/completions");
                    if (response.statusCode() != 200) {
                        failures.add(response.statusCode() + " " + response.asString());
                    } else {
                        answers.add(response.jsonPath());
                    }
                }
            }));
        }
        for (int swap = 0; swap < 6; swap++) {
            Thread.sleep(300);
            boolean toB = swap % 2 == 0;
            String version = given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json")
                    .body("{\"path\": \"" + (toB ? pathB : pathA) + "\"}").post("/admin/models")
                    .then().statusCode(200).extract().jsonPath().getString("version");
            expectedByVersion.put(version, toB ? expectedB : expectedA);
        }
        Thread.sleep(300);
        running.set(false);
        for (Future<?> loop : loops) {
            loop.get(60, TimeUnit.SECONDS);
        }
        clients.shutdown();
        assertEquals(List.of(), List.copyOf(failures));
        assertTrue(answers.size() > 20, "requests answered: " + answers.size());
        int versionsSeen = 0;
        Set<String> seen = ConcurrentHashMap.newKeySet();
        for (JsonPath answer : answers) {
            String version = answer.getString("system_fingerprint").substring("loraflow-v".length());
            assertTrue(expectedByVersion.containsKey(version), version);
            assertEquals(expectedByVersion.get(version), answer.getList("choices[0].token_ids", Integer.class),
                    "answer of version " + version);
            seen.add(version);
        }
        versionsSeen = seen.size();
        assertTrue(versionsSeen >= 4, "answers came from " + seen);
    }
}
