package dev.loraflow.serving.rest;

import dev.loraflow.platform.security.ApiKeyFilter;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.service.support.ServiceApiKeys;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.container.PreMatching;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.ext.Provider;

/**
 * The API keys that may change what is served (every {@code /admin} endpoint), checked before the body is
 * read (see {@link ApiKeyFilter}); refusals in OpenAI's error shape, code {@code invalid_api_key}.
 */
@Provider
@PreMatching
public class ApiKeys extends ServiceApiKeys implements ContainerRequestFilter {

    public ApiKeys() {
        super(Guarded.under("/admin"), "the admin API accepts nothing");
    }

    @Override
    protected Response refusal(int status, String message) {
        return OpenAiErrors.response(new ApiError(status, message, null, "invalid_api_key"), 1);
    }
}
