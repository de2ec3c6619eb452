package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.GenerationResult;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** KServe v2 over REST, the admin API's guard and failed loads, health and metrics, on tiny model A. */
@QuarkusTest
@TestProfile(ServingProfile.class)
class KServeAndAdminTest {

    @Test
    void healthAndMetadata() {
        given().get("/v2/health/live").then().statusCode(200).body("live", equalTo(true));
        given().get("/v2/health/ready").then().statusCode(200).body("ready", equalTo(true));
        given().get("/v2").then().statusCode(200).body("name", equalTo("loraflow-serving"));
        given().get("/v2/models/tiny").then().statusCode(200).body("name", equalTo("tiny"))
                .body("platform", equalTo("onnxruntime_onnx")).body("inputs.name", hasItem("input_ids"))
                .body("outputs.name", hasItem("text_output"));
        given().get("/v2/models/tiny/ready").then().statusCode(200).body("ready", equalTo(true));
        given().get("/v2/models/nope").then().statusCode(404).body("error", containsString("nope"));
        given().get("/v2/models/nope/ready").then().statusCode(404);
        given().get("/q/health/ready").then().statusCode(200).body("status", equalTo("UP"))
                .body("checks.find { it.name == 'model' }.data.name", equalTo("tiny"));
    }

    @Test
    void inferOnTokenIdsAndTextEqualsTheJavaGenerator() {
        int[] prompt = {10, 20, 30, 40};
        GenerationResult expected = OpenAiApiTest.expected(prompt, 8);
        JsonPath json = given().contentType("application/json").body("""
                {"id": "r1", "inputs": [{"name": "input_ids", "shape": [1, 4], "datatype": "INT64", "data": [10, 20, 30, 40]}],
                 "parameters": {"max_tokens": 8, "temperature": 0}}""").post("/v2/models/tiny/infer")
                .then().statusCode(200).extract().jsonPath();
        assertEquals("tiny", json.getString("model_name"));
        assertEquals("r1", json.getString("id"));
        assertEquals("output_ids", json.getString("outputs[0].name"));
        assertEquals(OpenAiApiTest.list(expected.tokens()), json.getList("outputs[0].data", Integer.class));
        assertEquals(expected.tokens().length, json.getInt("outputs[0].shape[1]"));
        assertEquals(OpenAiApiTest.text(expected.tokens()), json.getString("outputs[1].data[0]"));

        GenerationResult fromText = OpenAiApiTest.expected(OpenAiApiTest.bytes("Hi there"), 6);
        String version = json.getString("model_version");
        given().contentType("application/json").body("""
                {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Hi there"]}],
                 "parameters": {"max_tokens": 6, "temperature": 0}}""").post("/v2/models/tiny/versions/" + version + "/infer")
                .then().statusCode(200).body("outputs[1].data[0]", equalTo(OpenAiApiTest.text(fromText.tokens())));
        given().contentType("application/json").body("""
                {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Hi there"]}],
                 "outputs": [{"name": "text_output"}], "parameters": {"max_tokens": 6, "temperature": 0}}""")
                .post("/v2/models/tiny/infer").then().statusCode(200).body("outputs.name", equalTo(List.of("text_output")))
                .body("outputs[0].data[0]", equalTo(OpenAiApiTest.text(fromText.tokens())));
    }

    @Test
    void badInferRequestsAreRefusedInTheProtocolsShape() {
        String[] bad = {
            "{}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1, 3], \"datatype\": \"INT64\", \"data\": [1, 2]}]}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [2, 1], \"datatype\": \"INT64\", \"data\": [1, 2]}]}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"FP32\", \"data\": [1.5]}]}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [999]}]}",
            "{\"inputs\": [{\"name\": \"pixels\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [1]}]}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [1]}], \"parameters\": {\"max_tokens\": -1}}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [1]}], \"outputs\": [{\"name\": \"logits\"}]}",
            "{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [1]}], \"outputs\": \"all\"}",
            "not json",
        };
        for (String body : bad) {
            given().contentType("application/json").body(body).post("/v2/models/tiny/infer").then().statusCode(400)
                    .body("error", org.hamcrest.Matchers.notNullValue());
        }
        given().contentType("application/json").body("{\"inputs\": []}").post("/v2/models/nope/infer").then()
                .statusCode(404).body("error", containsString("nope"));
        given().contentType("application/json")
                .body("{\"inputs\": [{\"name\": \"input_ids\", \"shape\": [1], \"datatype\": \"INT64\", \"data\": [1]}]}")
                .post("/v2/models/tiny/versions/999/infer").then().statusCode(404);
    }

    /** Admin paths resolve inside loraflow.serving.admin-roots only: not elsewhere, not through .. nor a link. */
    @Test
    void theAdminApiReadsOnlyInsideItsRoots() throws IOException {
        String version = given().get("/v2/models/tiny").then().extract().jsonPath().getString("versions[0]");
        Path root = Path.of(org.eclipse.microprofile.config.ConfigProvider.getConfig()
                .getValue("loraflow.serving.admin-roots", String.class));
        Path modelB = Path.of(org.eclipse.microprofile.config.ConfigProvider.getConfig()
                .getValue("loraflow.test.model-b", String.class));
        Path outside = Files.createTempDirectory("loraflow-outside-roots");
        Files.copy(modelB, outside.resolve("model.onnx"));
        Path link = root.resolve("escape");
        Files.deleteIfExists(link);
        Files.createSymbolicLink(link, outside);
        String dotDot = root.resolve("..").resolve(outside.getFileName()).resolve("model.onnx").toString();
        for (Map<String, String> body : List.of(Map.of("path", outside.resolve("model.onnx").toString()),
                Map.of("path", "/etc/passwd"), Map.of("path", dotDot),
                Map.of("path", link.resolve("model.onnx").toString()),
                Map.of("path", modelB.toString(), "config_dir", outside.toString()))) {
            given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json").body(body)
                    .post("/admin/models").then().statusCode(403).body("error.code", equalTo("path_outside_roots"))
                    .body("error.message", containsString("loraflow.serving.admin-roots"));
        }
        for (String path : List.of(outside.toString(), dotDot, link.toString(), link.resolve("missing").toString())) {
            given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json")
                    .body(Map.of("name", "x", "path", path)).post("/admin/adapters").then().statusCode(403)
                    .body("error.code", equalTo("path_outside_roots"));
        }
        given().get("/v2/models/tiny").then().statusCode(200).body("versions[0]", equalTo(version));
        Files.delete(link);
    }

    @Test
    void theAdminApiRefusesWithoutTheKeyAndAFailedLoadLeavesTheModelServing() {
        String version = given().get("/v2/models/tiny").then().extract().jsonPath().getString("versions[0]");
        given().contentType("application/json").body("{\"path\": \"/nowhere.onnx\"}").post("/admin/models").then()
                .statusCode(401).body("error.code", equalTo("invalid_api_key"));
        given().header("Authorization", "Bearer wrong").contentType("application/json").body("{\"path\": \"/nowhere.onnx\"}")
                .post("/admin/models").then().statusCode(401);
        String modelB = org.eclipse.microprofile.config.ConfigProvider.getConfig().getValue("loraflow.test.model-b", String.class);
        Path root = Path.of(org.eclipse.microprofile.config.ConfigProvider.getConfig()
                .getValue("loraflow.serving.admin-roots", String.class));
        given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json")
                .body(Map.of("path", root.resolve("nowhere.onnx").toString())).post("/admin/models").then().statusCode(422)
                .body("error.code", equalTo("model_load_failed")).body("error.message", containsString("nowhere.onnx"));
        given().header("Authorization", "Bearer " + ServingProfile.API_KEY).contentType("application/json")
                .body("{\"path\": \"" + modelB + "\", \"sha256\": \"" + "ab".repeat(32) + "\"}").post("/admin/models")
                .then().statusCode(422).body("error.message", containsString("SHA-256"));
        given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json")
                .body(Map.of("name", "x", "path", root.resolve("nowhere").toString())).post("/admin/adapters").then()
                .statusCode(422);
        given().header("X-API-Key", ServingProfile.API_KEY).delete("/admin/adapters/x").then().statusCode(404);
        given().get("/v2/models/tiny").then().statusCode(200).body("versions[0]", equalTo(version));
        given().contentType("application/json").body("{\"model\": \"tiny\", \"prompt\": \"still\", \"max_tokens\": 3}")
                .post("/v1/completions").then().statusCode(200).body("system_fingerprint", equalTo("loraflow-v" + version));
    }

    @Test
    void prometheusMetricsReportRequestsTokensLatencyQueueBatchAndVersion() {
        given().contentType("application/json").body("{\"model\": \"tiny\", \"prompt\": \"count me\", \"max_tokens\": 4}")
                .post("/v1/completions").then().statusCode(200);
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        for (String name : new String[] {"loraflow_requests_total", "loraflow_generated_tokens_total",
                "loraflow_time_to_first_token_seconds_count", "loraflow_queue_depth", "loraflow_batch_active",
                "loraflow_decode_batch_size_count", "loraflow_model_version"}) {
            assertTrue(metrics.contains(name), name + " in\n" + metrics.lines().filter(l -> l.contains("loraflow")).toList());
        }
    }
}
