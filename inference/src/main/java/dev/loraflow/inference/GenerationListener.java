package dev.loraflow.inference;

/**
 * Told a generation's progress, on the engine's thread: return quickly, hand slow work (network writes)
 * to another thread. Exactly one of {@link #onComplete} and {@link #onError} ends every accepted
 * generation, unless it was cancelled.
 */
public interface GenerationListener {

    /**
     * @param token the id just generated
     * @param text  the text that became certain with it (see {@link Completion#text()}); empty without a tokenizer
     */
    void onToken(int token, String text);

    /** The whole result; {@link Completion#text()} may extend past what {@link #onToken} gave (a held-back tail). */
    void onComplete(Completion completion);

    void onError(RuntimeException error);
}
