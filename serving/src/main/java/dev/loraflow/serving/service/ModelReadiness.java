package dev.loraflow.serving.service;

import dev.loraflow.inference.ServedModel;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready while a model that loaded, matched its checksum and ran its warm-up token is served. */
@Readiness
public class ModelReadiness implements HealthCheck {

    @Inject
    Serving serving;

    @Override
    public HealthCheckResponse call() {
        ServedModel model = serving.current();
        var response = HealthCheckResponse.named("model").status(serving.ready());
        if (model != null) {
            response.withData("name", model.name()).withData("version", model.version())
                    .withData("sha256", model.sha256()).withData("provider", model.provider());
        }
        return response.build();
    }
}
