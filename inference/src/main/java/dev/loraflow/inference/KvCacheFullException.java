package dev.loraflow.inference;

/**
 * The KV cache the running and waiting requests have reserved leaves too little for this one
 * ({@link EngineSettings#kvCacheBytes()}): it was not accepted; try again when others have finished.
 */
public final class KvCacheFullException extends EngineOverloadedException {

    public KvCacheFullException(long neededBytes, long reservedBytes, long budgetBytes) {
        super("the server's KV cache is full: this request needs " + neededBytes + " bytes, " + reservedBytes + " of "
                + budgetBytes + " are reserved by other requests; retry later");
    }
}
