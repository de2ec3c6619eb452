package dev.loraflow.inference;

import java.util.concurrent.CompletableFuture;

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

    /** A listener for a caller that wants only the end: it completes {@code done}, normally or with the error. */
    static GenerationListener completing(CompletableFuture<Completion> done) {
        return new GenerationListener() {
            @Override
            public void onToken(int token, String text) {}

            @Override
            public void onComplete(Completion completion) {
                done.complete(completion);
            }

            @Override
            public void onError(RuntimeException error) {
                done.completeExceptionally(error);
            }
        };
    }
}
