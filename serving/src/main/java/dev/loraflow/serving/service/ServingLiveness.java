package dev.loraflow.serving.service;

import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;

/**
 * Live while the engine thread runs. It dies only of an Error (out of memory, say); the pod is then restarted
 * rather than left Ready and failing every request. (The Kafka connector of the event follower has its own
 * checks.)
 */
@Liveness
public class ServingLiveness implements HealthCheck {

    @Inject
    Serving serving;

    @Override
    public HealthCheckResponse call() {
        boolean engine = serving.live();
        return HealthCheckResponse.named("engine").status(engine).withData("engine", engine).build();
    }
}
