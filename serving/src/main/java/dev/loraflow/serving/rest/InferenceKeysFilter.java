package dev.loraflow.serving.rest;

import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.InferenceKeys;
import dev.loraflow.serving.service.ServingConfig;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.inject.Instance;
import jakarta.inject.Inject;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.core.Response;
import org.jboss.resteasy.reactive.server.ServerRequestFilter;

/**
 * {@link InferenceKeys} over REST, before the request is matched and its body read: {@code /v1/...} and
 * {@code /v2/models/...}; refusals (401, 429) in OpenAI's error shape.
 */
public class InferenceKeysFilter {

    @Inject
    InferenceKeys keys;
    /** Looked up per request: filters and readers are created at static init, before the runtime config. */
    @Inject
    Instance<ServingConfig> config;

    @ServerRequestFilter(preMatching = true)
    public Response check(ContainerRequestContext request, RoutingContext routing) {
        String path = request.getUriInfo().getPath();
        path = path.startsWith("/") ? path : "/" + path;
        if (!keys.enabled() || !(path.startsWith("/v1/") || path.startsWith("/v2/models"))) {
            return null;
        }
        // The place is given back when the response has been sent or the client went away.
        ApiError refused = keys.admit(request.getHeaderString("Authorization"), request.getHeaderString("X-API-Key"),
                "POST".equals(request.getMethod()), release -> routing.addEndHandler(ignored -> release.run()));
        return refused == null ? null : OpenAiErrors.response(refused, config.get().retryAfterSeconds());
    }
}
