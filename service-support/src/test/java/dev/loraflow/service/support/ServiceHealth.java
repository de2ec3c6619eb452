package dev.loraflow.service.support;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;

/**
 * What the services' {@code @QuarkusTest}s wait for and check on the SmallRye Health endpoints: a status
 * awaited (never slept for), and the health check of a service's own loop thread (the trainer's training
 * loop, the merger's merge loop), which turns liveness DOWN when the thread dies.
 */
public final class ServiceHealth {

    public static final String READY = "/q/health/ready";
    public static final String LIVE = "/q/health/live";
    private static final Duration POLL = Duration.ofMillis(200);

    private ServiceHealth() {}

    /** Waits until {@code GET path} answers {@code status}, failing after {@code timeout}. */
    public static void awaitStatus(String path, int status, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int last;
        while ((last = given().get(path).statusCode()) != status) {
            assertTrue(System.nanoTime() < deadline, path + " answered " + last + ", not " + status + ", for " + timeout);
            Thread.sleep(POLL);
        }
    }

    /** Liveness answers {@code status} and its check named {@code loop} is {@code state} (UP or DOWN). */
    public static void assertLoop(int status, String state) {
        given().get(LIVE).then().statusCode(status).body("checks.find { it.name == 'loop' }.status", equalTo(state));
    }

    /**
     * The service's loop thread is running once the service is ready: awaits readiness, then liveness with the
     * loop UP.
     */
    public static void awaitLoopRunning(Duration timeout) throws InterruptedException {
        awaitStatus(READY, 200, timeout);
        assertLoop(200, "UP");
    }

    /**
     * The service's loop thread has died: liveness turns 503 with the loop DOWN (so that Kubernetes restarts the
     * service rather than leave it up doing nothing), and readiness is 503 too.
     */
    public static void awaitLoopDead(Duration timeout) throws InterruptedException {
        awaitStatus(LIVE, 503, timeout);
        assertLoop(503, "DOWN");
        given().get(READY).then().statusCode(503);
    }
}
