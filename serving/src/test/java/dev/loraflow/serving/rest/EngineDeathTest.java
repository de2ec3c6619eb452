package dev.loraflow.serving.rest;

import dev.loraflow.serving.service.Serving;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.inference.Completion;
import dev.loraflow.inference.GenerationListener;
import dev.loraflow.inference.GenerationRequest;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The engine thread dying (here of an Error thrown on it, as an out-of-memory would be) takes the pod out
 * of service: liveness and readiness report DOWN, so Kubernetes restarts it, instead of a Ready pod that
 * fails every request.
 */
@QuarkusTest
@TestProfile(EngineDeathTest.Profile.class)
class EngineDeathTest {

    /** Its own application: the engine it kills is not the one other tests use. */
    public static class Profile extends ServingProfile {}

    private static final String COMPLETION = "{\"model\": \"tiny\", \"prompt\": \"Hello\", \"max_tokens\": 2}";

    @Inject
    Serving serving;

    @Test
    void anEngineThreadThatDiedMakesTheServiceNeitherLiveNorReady() throws InterruptedException {
        given().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
        given().get("/q/health/ready").then().statusCode(200).body("status", equalTo("UP"));
        given().contentType("application/json").body(COMPLETION).post("/v1/completions").then().statusCode(200);

        Serving.Target target = serving.acquire("tiny");
        assertNotNull(target, "the profile's model is served");
        serving.engine().submit(target.model(), new GenerationRequest(new int[] {1, 2, 3},
                SamplingSettings.greedy(4, Set.of()), List.of(), null), new GenerationListener() {
                    @Override
                    public void onToken(int token, String text) {
                        throw new OutOfMemoryError("thrown on the engine thread by the test");
                    }

                    @Override
                    public void onComplete(Completion completion) {}

                    @Override
                    public void onError(RuntimeException error) {}
                });
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (serving.live()) {
            assertTrue(System.nanoTime() < deadline, "the engine thread did not end");
            Thread.sleep(20);
        }

        given().get("/q/health/live").then().statusCode(503).body("status", equalTo("DOWN"))
                .body("checks.find { it.name == 'engine' }.data.engine", equalTo(false));
        given().get("/q/health/ready").then().statusCode(503).body("status", equalTo("DOWN"));
        given().get("/v2/health/live").then().statusCode(503).body("live", equalTo(false));
        int status = given().contentType("application/json").body(COMPLETION).post("/v1/completions").then().extract()
                .statusCode();
        assertNotEquals(200, status, "no request is answered as if served");
    }
}
