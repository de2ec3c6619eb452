package dev.loraflow.serving.rest;

import dev.loraflow.platform.security.ApiKeyCheck;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.core.Response;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.resteasy.reactive.server.ServerRequestFilter;

/**
 * Optional API keys for the inference endpoints: over REST {@code /v1/...} and {@code /v2/models/...} (the
 * health and server metadata stay open), over gRPC every call but the health ones ({@link
 * dev.loraflow.serving.kserve.InferenceKeysGrpc}). With {@code loraflow.serving.inference-keys} set, a request
 * needs one of them ({@code Authorization: Bearer KEY} or {@code X-API-Key}), checked before its body is read,
 * and each key may have at most {@code loraflow.serving.inference-key-concurrency} generations running at
 * once; one more is refused (429, RESOURCE_EXHAUSTED). None configured: the endpoints are open.
 */
@ApplicationScoped
public class InferenceKeys {

    @ConfigProperty(name = "loraflow.serving.inference-keys")
    Optional<List<String>> keys;
    @ConfigProperty(name = "loraflow.serving.inference-key-concurrency", defaultValue = "4")
    int concurrency;
    @ConfigProperty(name = "loraflow.serving.retry-after-seconds", defaultValue = "1")
    int retryAfterSeconds;

    /** Each key's free places. */
    private final Map<String, Semaphore> places = new ConcurrentHashMap<>();

    public boolean enabled() {
        return ApiKeyCheck.configured(keys.orElse(List.of()));
    }

    /**
     * Admits a request presenting these headers, or says why not. An admitted generation holds a place of
     * its key until the runnable handed to {@code onEnd} runs (once, however often it is called).
     *
     * @return null when admitted; else the 401 or 429 to answer
     */
    public ApiError admit(String authorization, String apiKey, boolean generation, Consumer<Runnable> onEnd) {
        String key = ApiKeyCheck.match(keys.orElse(List.of()), authorization, apiKey);
        if (key == null) {
            return new ApiError(401, "a valid API key is required (Authorization: Bearer KEY or X-API-Key;"
                    + " loraflow.serving.inference-keys)", null, "invalid_api_key");
        }
        if (!generation || concurrency <= 0) {
            return null;
        }
        Semaphore free = places.computeIfAbsent(key, ignored -> new Semaphore(concurrency));
        if (!free.tryAcquire()) {
            return new ApiError(429, "this API key already has " + concurrency
                    + " requests running (loraflow.serving.inference-key-concurrency); retry when one ends", null,
                    "concurrency_limit_exceeded");
        }
        AtomicBoolean released = new AtomicBoolean();
        onEnd.accept(() -> {
            if (released.compareAndSet(false, true)) {
                free.release();
            }
        });
        return null;
    }

    @ServerRequestFilter(preMatching = true)
    public Response check(ContainerRequestContext request, RoutingContext routing) {
        String path = request.getUriInfo().getPath();
        path = path.startsWith("/") ? path : "/" + path;
        if (!enabled() || !(path.startsWith("/v1/") || path.startsWith("/v2/models"))) {
            return null;
        }
        // The place is given back when the response has been sent or the client went away.
        ApiError refused = admit(request.getHeaderString("Authorization"), request.getHeaderString("X-API-Key"),
                "POST".equals(request.getMethod()), release -> routing.addEndHandler(ignored -> release.run()));
        return refused == null ? null : OpenAiResource.error(refused, retryAfterSeconds);
    }
}
