package dev.loraflow.trainer.rest;

import dev.loraflow.trainer.service.TrainerService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready only while the training loop runs and reaches the broker. */
@Readiness
@ApplicationScoped
public class KafkaReadiness implements HealthCheck {

    @Inject
    TrainerService service;

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("kafka").status(service.ready())
                .withData("bootstrap.servers", service.kafka().bootstrapServers()).build();
    }
}
