package dev.loraflow.inference;

/** A generation still running (or waiting) when its deadline passed: it was ended and its place in the batch freed. */
public final class DeadlineExceededException extends RuntimeException {

    public DeadlineExceededException(int generatedTokens) {
        super("the request did not finish before its deadline (" + generatedTokens + " tokens generated)");
    }
}
