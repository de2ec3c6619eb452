package dev.loraflow.trainer.rest;

import dev.loraflow.platform.security.ApiKeyFilter;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.container.PreMatching;
import jakarta.ws.rs.ext.Provider;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** The API keys that may submit jobs ({@code POST /jobs}), checked before the body is read: see {@link ApiKeyFilter}. */
@Provider
@PreMatching
// Implements the filter interface itself too: Quarkus finds providers in the service's own class index.
public class ApiKeys extends ApiKeyFilter implements ContainerRequestFilter {

    @ConfigProperty(name = "loraflow.api-keys")
    Optional<List<String>> keys;

    @Override
    protected List<String> keys() {
        return keys.orElse(List.of());
    }

    @Override
    protected boolean guards(String method, String path) {
        return "POST".equals(method) && (path.equals("/jobs") || path.equals("/jobs/"));
    }

    @Override
    protected String disabledMessage() {
        return "job submission is disabled: no API key is configured (loraflow.api-keys)";
    }
}
