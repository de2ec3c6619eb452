package dev.loraflow.platform.events;

/** A record that is not a valid event of its topic: the reason goes to the dead-letter topic. */
public class EventFormatException extends Exception {

    public EventFormatException(String message) {
        super(message);
    }

    public EventFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
