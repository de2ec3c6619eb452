package dev.loraflow.merger.rest;

import dev.loraflow.merger.service.MergerService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;
import org.eclipse.microprofile.health.Readiness;

/**
 * The merger's own check, {@code loop}, beside the Kafka connector's checks of its channels (the consumer's
 * partition assignment, the announcement topic): live until an {@link Error} (out of memory) ended a merge —
 * then consumption has stopped and the process is restarted (Kubernetes' liveness probe) rather than left up
 * merging nothing — and ready once, in addition, its topics exist.
 */
@ApplicationScoped
public class MergerHealth {

    @Inject
    MergerService service;

    @Produces
    @Liveness
    HealthCheck live() {
        return () -> HealthCheckResponse.named("loop").status(service.merges() != null && service.merges().alive()).build();
    }

    @Produces
    @Readiness
    HealthCheck ready() {
        return () -> HealthCheckResponse.named("loop")
                .status(service.merges() != null && service.merges().alive() && service.topicsReady()).build();
    }
}
