package dev.loraflow.inference;

/**
 * The engine has no room for the request now (its queue, or its KV cache budget): it was not accepted and
 * nothing of it ran; the same request may succeed later. Serving answers 429 (gRPC RESOURCE_EXHAUSTED).
 */
public abstract sealed class EngineOverloadedException extends RuntimeException
        permits QueueFullException, KvCacheFullException {

    EngineOverloadedException(String message) {
        super(message);
    }
}
