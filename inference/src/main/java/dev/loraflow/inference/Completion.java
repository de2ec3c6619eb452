package dev.loraflow.inference;

import dev.loraflow.core.generate.GenerationResult.FinishReason;

/**
 * A finished generation.
 *
 * @param tokens          the generated ids, a stop token included (as core's Generator returns them)
 * @param text            their text without the stop token and cut before a stop sequence; null without a tokenizer
 * @param finishReason    STOP (stop token or sequence) or LENGTH (max tokens or the context filled)
 * @param promptTokens    the prompt's length
 * @param modelVersion    the version of the model every token came from
 * @param queuedNanos     from submission to the prefill
 * @param firstTokenNanos from submission to the first token
 * @param totalNanos      from submission to the end
 */
public record Completion(int[] tokens, String text, FinishReason finishReason, int promptTokens, String modelVersion,
                         long queuedNanos, long firstTokenNanos, long totalNanos) {}
