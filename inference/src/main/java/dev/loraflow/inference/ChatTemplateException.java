package dev.loraflow.inference;

/** A chat template that does not render for the messages given; the message says why (a raise_exception's own text). */
public final class ChatTemplateException extends Exception {

    public ChatTemplateException(String message) {
        super(message);
    }
}
