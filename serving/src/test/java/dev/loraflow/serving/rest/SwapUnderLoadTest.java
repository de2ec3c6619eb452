package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.serving.CompletionLoad;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/** Swaps between models A and B while clients keep asking: no request fails and each answer is wholly one version's. */
@QuarkusTest
@TestProfile(ServingProfile.class)
class SwapUnderLoadTest {

    private static final int ANSWERS_PER_VERSION = 5;

    /** Loads the model at {@code path} through the admin API; returns the version it is served as. */
    private static String load(String path) {
        return given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json")
                .body("{\"path\": \"" + path + "\"}").post("/admin/models")
                .then().statusCode(200).extract().jsonPath().getString("version");
    }

    @Test
    void repeatedSwapsUnderLoadFailNoRequest() throws Exception {
        int[] prompt = {5, 6, 7, 8, 9};
        SamplingSettings greedy = SamplingSettings.greedy(24, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID));
        List<Integer> expectedA = OpenAiApiTest.list(Generator.generate(
                TinyModelResource.javaModel(TinyModelResource.SEED_A), prompt, greedy).tokens());
        List<Integer> expectedB = OpenAiApiTest.list(Generator.generate(
                TinyModelResource.javaModel(TinyModelResource.SEED_B), prompt, greedy).tokens());
        assertNotEquals(expectedA, expectedB);
        String pathA = ConfigProvider.getConfig().getValue("loraflow.test.model-a", String.class);
        String pathB = ConfigProvider.getConfig().getValue("loraflow.test.model-b", String.class);
        // Whatever another test of this profile left loaded, the swaps start from A.
        String version = load(pathA);
        Map<String, List<Integer>> expectedByVersion = new ConcurrentHashMap<>();
        expectedByVersion.put(version, expectedA);

        CompletionLoad load = CompletionLoad.start(4,
                "{\"model\": \"tiny\", \"prompt\": [5, 6, 7, 8, 9], \"max_tokens\": 24, \"temperature\": 0}");
        try (load) {
            for (int swap = 0; swap < 6; swap++) {
                load.awaitAnswersOf(version, ANSWERS_PER_VERSION);
                boolean toB = swap % 2 == 0;
                version = load(toB ? pathB : pathA);
                expectedByVersion.put(version, toB ? expectedB : expectedA);
            }
            load.awaitAnswersOf(version, ANSWERS_PER_VERSION);
        }
        load.assertEachAnswerWhollyOneVersion(expectedByVersion, 7 * ANSWERS_PER_VERSION, 7);
    }
}
