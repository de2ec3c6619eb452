package dev.loraflow.core.generate;

import java.util.Arrays;
import java.util.Objects;

/**
 * What {@link Generator#generate} produced.
 *
 * @param tokens       the generated ids, without the prompt; ending with the stop token when
 *                     {@code finishReason} is {@link FinishReason#STOP}, as Hugging Face's output does
 * @param finishReason why generation ended
 */
public record GenerationResult(int[] tokens, FinishReason finishReason) {

    public enum FinishReason {
        /** A stop (EOS) token was generated. */
        STOP,
        /** maxNewTokens were generated, or the sequence filled the model's context. */
        LENGTH
    }

    public GenerationResult {
        tokens = tokens.clone();
        Objects.requireNonNull(finishReason, "finishReason");
    }

    /** A copy. */
    @Override
    public int[] tokens() {
        return tokens.clone();
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof GenerationResult result && Arrays.equals(tokens, result.tokens)
                && finishReason == result.finishReason;
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(tokens) + finishReason.hashCode();
    }

    @Override
    public String toString() {
        return "GenerationResult[tokens=" + Arrays.toString(tokens) + ", finishReason=" + finishReason + "]";
    }
}
