package dev.loraflow.broker;

/** A local Kafka broker did not start; the message says why and ends with the tail of its log. */
public final class BrokerStartException extends RuntimeException {

    public BrokerStartException(String message) {
        super(message);
    }

    public BrokerStartException(String message, Throwable cause) {
        super(message, cause);
    }
}
