package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.await;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.platform.store.LocalArtifactStore;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * Several merged models served at once by name, on a real broker and ONNX Runtime: each job's model answers as
 * its own Java generator does, over OpenAI and KServe; under a budget that holds one, the least recently used
 * is closed and loaded again when asked for; a new version of one job swaps that one only.
 */
@QuarkusTest
@TestProfile(ManyModelsProfile.class)
class ManyModelsTest {

    private static final int[] PROMPT = {5, 6, 7, 8, 9};

    private static List<Integer> expected(long seed) {
        int[] tokens = Generator.generate(Announcements.model(seed), PROMPT,
                SamplingSettings.greedy(12, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID))).tokens();
        return Arrays.stream(tokens).boxed().toList();
    }

    private static List<Integer> complete(String model) {
        return given().contentType("application/json").body(Map.of("model", model, "prompt", List.of(5, 6, 7, 8, 9),
                        "max_tokens", 12, "temperature", 0)).post("/v1/completions").then().statusCode(200)
                .body("model", equalTo(model)).extract().jsonPath().getList("choices[0].token_ids", Integer.class);
    }

    private static List<Integer> infer(String model) {
        String body = "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1, 5], \"datatype\": \"INT64\","
                + " \"data\": [5, 6, 7, 8, 9]}], \"parameters\": {\"max_tokens\": 12, \"temperature\": 0}}";
        return given().contentType("application/json").body(body).post("/v2/models/" + model + "/infer").then()
                .statusCode(200).body("model_name", equalTo(model)).extract().jsonPath()
                .getList("outputs.find { it.name == 'output_ids' }.data", Integer.class);
    }

    /** An unlabelled metric's value in /q/metrics. */
    private static double metric(String name) {
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        return metrics.lines().filter(line -> line.startsWith(name + " ")).mapToDouble(line ->
                Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1))).findFirst()
                .orElseThrow(() -> new AssertionError(name + " is not in /q/metrics"));
    }

    private static JsonPath models() {
        return given().get("/v1/models").then().statusCode(200).extract().jsonPath();
    }

    private static boolean open(String model) {
        return models().getBoolean("data.find { it.id == '" + model + "' }.loaded");
    }

    @Test
    void twoJobsModelsAreServedSideBySideAndTheLeastRecentlyUsedIsClosedUnderTheBudget() throws IOException {
        await("both jobs' models known", () -> {
            List<String> ids = models().getList("data.id", String.class);
            return ids.contains(ManyModelsResource.JOB_A) && ids.contains(ManyModelsResource.JOB_B);
        });
        List<Integer> expectedA = expected(ManyModelsResource.SEED_A);
        List<Integer> expectedB = expected(ManyModelsResource.SEED_B);
        assertNotEquals(expectedA, expectedB);
        JsonPath listed = models();
        // The default name stands for the model announced last, listed first.
        assertEquals("tiny", listed.getString("data[0].id"));
        assertEquals(ManyModelsResource.JOB_B, listed.getString("data[0].announced.model"));
        assertEquals(ManyModelsResource.JOB_A, listed.getString("data.find { it.id == 'job-a' }.announced.model"));

        double evictions = metric("loraflow_serving_model_evictions_total");
        double reloads = metric("loraflow_serving_model_reloads_total");
        assertEquals(expectedA, complete(ManyModelsResource.JOB_A));
        assertTrue(open(ManyModelsResource.JOB_A));
        assertEquals(expectedB, complete(ManyModelsResource.JOB_B));
        assertEquals(expectedB, complete("tiny"));
        // Within the budget only one is open: job-a was closed when job-b was opened, and is opened again.
        assertTrue(open(ManyModelsResource.JOB_B));
        assertTrue(!open(ManyModelsResource.JOB_A), "job-a closed to make room");
        assertEquals(1.0, metric("loraflow_serving_models_open"));
        assertEquals(expectedA, infer(ManyModelsResource.JOB_A));
        assertEquals(expectedB, infer(ManyModelsResource.JOB_B));
        assertEquals(expectedA, complete(ManyModelsResource.JOB_A));
        assertTrue(metric("loraflow_serving_model_evictions_total") >= evictions + 3);
        assertTrue(metric("loraflow_serving_model_reloads_total") >= reloads + 3);

        // Unknown names: OpenAI's model_not_found, KServe's 404.
        given().contentType("application/json").body(Map.of("model", "job-c", "prompt", List.of(5), "max_tokens", 1))
                .post("/v1/completions").then().statusCode(404).body("error.code", equalTo("model_not_found"))
                .body("error.type", equalTo("not_found_error"));
        given().get("/v2/models/job-c").then().statusCode(404).body("error", equalTo("no model named 'job-c' is served"));
        given().get("/v2/models/job-a/ready").then().statusCode(200);

        // A new version of job-a swaps job-a only; the default name now stands for it, announced last.
        LocalArtifactStore store = new LocalArtifactStore(Path.of(ConfigProvider.getConfig()
                .getValue("loraflow.store.root", String.class)));
        Announcements.Release a2 = Announcements.Release.decode(ConfigProvider.getConfig()
                .getValue("loraflow.test.release-a2", String.class));
        List<ProducerRecord<byte[], byte[]>> next = List.of(Announcements.record(Announcements.MODELS_TOPIC,
                ManyModelsResource.JOB_A, Announcements.event(ManyModelsResource.JOB_A, 2, a2).encode()));
        Announcements.recordOutcomes(store, next);
        Announcements.publish(Announcements.client(PlatformUsers.MERGER), next);
        await("job-a version 2 served", () -> models().getLong("data.find { it.id == 'job-a' }.announced.model_version") == 2);
        assertEquals(expected(ManyModelsResource.SEED_A2), complete(ManyModelsResource.JOB_A));
        assertEquals(expectedB, complete(ManyModelsResource.JOB_B));
        assertEquals(ManyModelsResource.JOB_A, models().getString("data[0].announced.model"));
        assertEquals(expected(ManyModelsResource.SEED_A2), complete("tiny"));
    }
}
