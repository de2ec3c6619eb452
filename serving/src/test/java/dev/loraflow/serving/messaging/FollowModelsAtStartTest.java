package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.await;
import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import org.junit.jupiter.api.Test;

/**
 * At start serving finds the newest verified model of the history {@link AnnouncedModelsResource} published.
 * A profile of its own gives this class a service that has seen nothing else: {@link FollowModelsTest}, which
 * publishes more, cannot run before it on the same service.
 */
@QuarkusTest
@TestProfile(FollowModelsAtStartTest.FreshService.class)
class FollowModelsAtStartTest {

    /** {@link FollowModelsProfile} in a service and broker started for this class alone. */
    public static class FreshService extends FollowModelsProfile {}

    @Test
    void atStartTheNewestVerifiedModelIsServedWithoutManualSteps() {
        await("ready", () -> given().get("/q/health/ready").statusCode() == 200);
        JsonPath served = FollowModelsTest.served();
        assertEquals("tiny", served.getString("id"));
        assertEquals(AnnouncedModelsResource.MODEL, served.getString("announced.model"));
        // Version 9 is newer but its graph does not match its SHA-256; 99 is another model's.
        assertEquals(7, served.getLong("announced.model_version"));
        assertEquals(FollowModelsTest.expected(AnnouncedModelsResource.SEED_B), FollowModelsTest.complete());
        assertEquals(1, FollowModelsTest.events("failed"));
        assertEquals(1, FollowModelsTest.events("malformed"));
        assertEquals(1, FollowModelsTest.events("loaded"));
        String gauge = given().get("/q/metrics").then().extract().asString();
        assertTrue(gauge.contains("loraflow_serving_model_version{model=\"tiny\"} 7.0"), gauge);
    }
}
