package dev.loraflow.serving.service;

import dev.loraflow.platform.security.ApiKeyCheck;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * Optional API keys for the inference endpoints: over REST {@code /v1/...} and {@code /v2/models/...} ({@link
 * dev.loraflow.serving.rest.InferenceKeysFilter}: the health and server metadata stay open), over gRPC every call but the health ones ({@link
 * dev.loraflow.serving.kserve.InferenceKeysGrpc}). With {@code loraflow.serving.inference-keys} set, a request
 * needs one of them ({@code Authorization: Bearer KEY} or {@code X-API-Key}), checked before its body is read,
 * and each key may have at most {@code loraflow.serving.inference-key-concurrency} generations running at
 * once; one more is refused (429, RESOURCE_EXHAUSTED). None configured: the endpoints are open.
 */
@ApplicationScoped
public class InferenceKeys {

    @Inject
    ServingConfig config;

    /** Each key's free places. */
    private final Map<String, Semaphore> places = new ConcurrentHashMap<>();

    public boolean enabled() {
        return ApiKeyCheck.configured(config.inferenceKeys().orElse(List.of()));
    }

    /**
     * Admits a request presenting these headers, or says why not. An admitted generation holds a place of
     * its key until the runnable handed to {@code onEnd} runs (once, however often it is called).
     *
     * @return null when admitted; else the 401 or 429 to answer
     */
    public ApiError admit(String authorization, String apiKey, boolean generation, Consumer<Runnable> onEnd) {
        String key = ApiKeyCheck.match(config.inferenceKeys().orElse(List.of()), authorization, apiKey);
        if (key == null) {
            return new ApiError(401, "a valid API key is required (Authorization: Bearer KEY or X-API-Key;"
                    + " loraflow.serving.inference-keys)", null, "invalid_api_key");
        }
        int concurrency = config.inferenceKeyConcurrency();
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
}
