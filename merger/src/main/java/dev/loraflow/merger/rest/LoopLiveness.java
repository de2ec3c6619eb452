package dev.loraflow.merger.rest;

import dev.loraflow.merger.service.MergerService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;

/**
 * Live while the consuming loop's thread runs. No record's failure ends it; an Error (out of memory) does,
 * and then the process is restarted (Kubernetes' liveness probe) rather than left up doing nothing.
 */
@Liveness
@ApplicationScoped
public class LoopLiveness implements HealthCheck {

    @Inject
    MergerService service;

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("loop").status(service.alive()).build();
    }
}
