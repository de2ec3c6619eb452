package dev.loraflow.serving.rest;

import dev.loraflow.serving.messaging.EventFollower;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;

/**
 * Live while the engine thread runs and, when models or adapters are followed, the follower's thread too.
 * Either dies only of an Error (out of memory, say); the pod is then restarted rather than left Ready and
 * failing every request, or serving a model it no longer follows.
 */
@Liveness
public class ServingLiveness implements HealthCheck {

    @Inject
    Serving serving;
    @Inject
    EventFollower follower;

    @Override
    public HealthCheckResponse call() {
        boolean engine = serving.live();
        boolean following = follower.alive();
        return HealthCheckResponse.named("engine").status(engine && following).withData("engine", engine)
                .withData("event-follower", following).build();
    }
}
