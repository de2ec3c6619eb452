package dev.loraflow.serving;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.path.json.JsonPath;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The OpenAPI document lists every REST operation, each with a summary. */
@QuarkusTest
class OpenApiTest {

    @Test
    void theDocumentListsTheApis() {
        JsonPath document = given().queryParam("format", "json").get("/q/openapi").then().statusCode(200).extract().jsonPath();
        assertEquals("loraflow serving", document.getString("info.title"));
        Map<String, Map<String, Map<String, Object>>> paths = document.getMap("paths");
        Map<String, Set<String>> expected = Map.of(
                "/v1/completions", Set.of("post"),
                "/v1/chat/completions", Set.of("post"),
                "/v1/models", Set.of("get"),
                "/v2/models/{name}/infer", Set.of("post"),
                "/v2/health/ready", Set.of("get"),
                "/admin/models", Set.of("get", "post"),
                "/admin/adapters/{name}", Set.of("delete"));
        expected.forEach((path, methods) -> {
            assertTrue(paths.containsKey(path), path + " in " + paths.keySet());
            assertEquals(methods, paths.get(path).keySet(), path);
            paths.get(path).forEach((method, operation) -> assertTrue(operation.get("summary") instanceof String summary
                    && !summary.isBlank(), method + " " + path + " has a summary"));
        });
    }
}
