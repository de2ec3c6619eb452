package dev.loraflow.platform.security;

import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.List;
import java.util.Map;

/**
 * The services' key check on the endpoints that change things, run before the request is matched to a
 * resource and before its body is read: a request without a valid key costs the service its headers
 * only, never a buffered body. Each service's subclass is its {@code @Provider @PreMatching} filter and
 * says which requests it guards; see {@link ApiKeyCheck} for the scheme.
 */
public abstract class ApiKeyFilter implements ContainerRequestFilter {

    /** The configured keys; none = every guarded request is refused. */
    protected abstract List<String> keys();

    /**
     * Whether the request needs a key.
     *
     * @param path the request's path, beginning with "/"
     */
    protected abstract boolean guards(String method, String path);

    /** What a refusal says when no key is configured: what is disabled, and the setting that enables it. */
    protected abstract String disabledMessage();

    /** The refusal in the service's error shape; by default {@code {"error": message}}. */
    protected Response refusal(int status, String message) {
        return Response.status(status).type(MediaType.APPLICATION_JSON).entity(Map.of("error", message)).build();
    }

    @Override
    public void filter(ContainerRequestContext request) {
        String path = request.getUriInfo().getPath();
        if (!guards(request.getMethod(), path.startsWith("/") ? path : "/" + path)) {
            return;
        }
        List<String> keys = keys();
        if (!ApiKeyCheck.accepts(keys, request.getHeaderString("Authorization"), request.getHeaderString("X-API-Key"))) {
            request.abortWith(refusal(401, ApiKeyCheck.configured(keys)
                    ? "a valid API key is required (Authorization: Bearer <key> or X-API-Key)" : disabledMessage()));
        }
    }
}
