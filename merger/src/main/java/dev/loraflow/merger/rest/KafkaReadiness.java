package dev.loraflow.merger.rest;

import dev.loraflow.merger.service.MergerService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready only while the merge loop runs and reaches the broker. */
@Readiness
@ApplicationScoped
public class KafkaReadiness implements HealthCheck {

    @Inject
    MergerService service;

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("kafka").status(service.ready())
                .withData("bootstrap.servers", service.kafka().bootstrapServers()).build();
    }
}
