package dev.loraflow.inference;

import dev.loraflow.core.generate.SamplingSettings;
import java.util.List;
import java.util.Objects;

/**
 * One generation: a prompt of token ids continued as the settings say.
 *
 * @param promptIds     at least one id, fewer than the model's context
 * @param sampling      core's settings (max tokens, temperature, top-k, top-p, seed, stop token ids),
 *                      applied by core's {@link dev.loraflow.core.generate.Sampler} as its Generator does
 * @param stopSequences texts that end the generation when they appear, cut off from the text; need a tokenizer
 * @param adapter       the loaded adapter to run with, or null for the model as exported
 */
public record GenerationRequest(int[] promptIds, SamplingSettings sampling, List<String> stopSequences, String adapter) {

    /** Stop sequences one request may give, as OpenAI allows. */
    public static final int MAX_STOP_SEQUENCES = 4;
    /** Characters one stop sequence may have: the engine's cost per token grows with it (see {@link TextStream}). */
    public static final int MAX_STOP_CHARS = 128;

    /**
     * @throws IllegalArgumentException for more than {@value #MAX_STOP_SEQUENCES} stop sequences, an
     *                                  empty one, or one longer than {@value #MAX_STOP_CHARS} characters
     */
    public GenerationRequest {
        promptIds = promptIds.clone();
        Objects.requireNonNull(sampling, "sampling");
        stopSequences = List.copyOf(stopSequences);
        if (stopSequences.size() > MAX_STOP_SEQUENCES) {
            throw new IllegalArgumentException("at most " + MAX_STOP_SEQUENCES + " stop sequences, got " + stopSequences.size());
        }
        for (String stop : stopSequences) {
            if (stop.isEmpty()) {
                throw new IllegalArgumentException("a stop sequence must not be empty");
            }
            if (stop.length() > MAX_STOP_CHARS) {
                throw new IllegalArgumentException("a stop sequence may have at most " + MAX_STOP_CHARS
                        + " characters, got one of " + stop.length());
            }
        }
    }

    @Override
    public int[] promptIds() {
        return promptIds.clone();
    }

    int promptLength() {
        return promptIds.length;
    }

    int promptId(int index) {
        return promptIds[index];
    }
}
