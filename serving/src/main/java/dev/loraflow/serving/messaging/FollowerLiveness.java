package dev.loraflow.serving.messaging;

import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;

/**
 * Live while nothing is followed or the follower's thread runs. It dies only of an Error; the pod is then
 * restarted rather than left serving a model it no longer follows.
 */
@Liveness
public class FollowerLiveness implements HealthCheck {

    @Inject
    EventFollower follower;

    @Override
    public HealthCheckResponse call() {
        boolean following = follower.alive();
        return HealthCheckResponse.named("event-follower").status(following).withData("event-follower", following).build();
    }
}
