package dev.loraflow.serving.rest;

import dev.loraflow.platform.security.ApiKeyFilter;
import dev.loraflow.platform.security.ConfiguredKeys;
import dev.loraflow.serving.service.ApiError;
import jakarta.annotation.PostConstruct;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.container.PreMatching;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.ext.Provider;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * The API keys that may change what is served (every {@code /admin} endpoint), checked before the body is
 * read (see {@link ApiKeyFilter}); refusals in OpenAI's error shape, code {@code invalid_api_key}.
 */
@Provider
@PreMatching
// Implements the filter interface itself too: Quarkus finds providers in the service's own class index.
public class ApiKeys extends ApiKeyFilter implements ContainerRequestFilter {

    @ConfigProperty(name = "loraflow.api-keys")
    Optional<List<String>> inline;
    /** A file of keys, e.g. a mounted Secret: see {@link ConfiguredKeys}. */
    @ConfigProperty(name = "loraflow.api-keys-file")
    Optional<String> file;

    private ConfiguredKeys keys;

    @PostConstruct
    void read() {
        keys = new ConfiguredKeys(inline.orElse(List.of()), file.filter(name -> !name.isBlank()).map(Path::of));
    }

    @Override
    protected List<String> keys() {
        return keys.keys();
    }

    @Override
    protected boolean guards(String method, String path) {
        return path.equals("/admin") || path.startsWith("/admin/");
    }

    @Override
    protected String disabledMessage() {
        return "no API key is configured (loraflow.api-keys or loraflow.api-keys-file), so the admin API accepts nothing";
    }

    @Override
    protected Response refusal(int status, String message) {
        return OpenAiErrors.response(new ApiError(status, message, null, "invalid_api_key"), 1);
    }
}
