package dev.loraflow.inference;

/** The engine's queue is full: the request was not accepted; try again later. */
public final class QueueFullException extends EngineOverloadedException {

    public QueueFullException(int capacity) {
        super("the server is at capacity: " + capacity + " requests are already waiting; retry later");
    }
}
