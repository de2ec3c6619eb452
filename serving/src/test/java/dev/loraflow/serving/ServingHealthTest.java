package dev.loraflow.serving;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;

import io.quarkus.test.junit.QuarkusTest;
import org.junit.jupiter.api.Test;

/** Without a model configured the service is live but not ready, and generation answers 503. */
@QuarkusTest
class ServingHealthTest {

    @Test
    void liveButNotReadyWithoutAModel() {
        given().when().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
        given().when().get("/q/health/ready").then().statusCode(503).body("status", equalTo("DOWN"));
        given().when().get("/v2/health/ready").then().statusCode(503).body("ready", equalTo(false));
        given().contentType("application/json").body("{\"model\": \"loraflow\", \"prompt\": \"x\"}")
                .post("/v1/completions").then().statusCode(503).body("error.code", equalTo("model_not_loaded"));
    }
}
