package dev.loraflow.serving.rest;

import dev.loraflow.platform.security.ApiKeyCheck;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** The API keys that may change what is served (every {@code /admin} endpoint), in the services' one scheme: see {@link ApiKeyCheck}. */
@ApplicationScoped
public class ApiKeys {

    @ConfigProperty(name = "loraflow.api-keys")
    Optional<List<String>> keys;

    public boolean accepts(String authorization, String apiKey) {
        return ApiKeyCheck.accepts(keys.orElse(List.of()), authorization, apiKey);
    }

    public boolean configured() {
        return ApiKeyCheck.configured(keys.orElse(List.of()));
    }
}
