package dev.loraflow.core.generate;

import dev.loraflow.core.model.CausalLanguageModel;
import java.util.Arrays;
import java.util.Objects;
import java.util.function.IntConsumer;

/**
 * Generation with a KV cache: the prompt goes through the model once, then each new token once, and
 * the {@link Sampler} picks every next token from the last logits. The reference that exported and
 * served models are checked against.
 *
 * <p>The sequence never outgrows the model's context: generation stops with
 * {@link GenerationResult.FinishReason#LENGTH} when the prompt and the generated tokens fill it, as
 * when maxNewTokens are reached, so the whole sequence can always be fed back to the model.
 */
public final class Generator {

    private Generator() {}

    /** {@link #generate(CausalLanguageModel, int[], SamplingSettings, IntConsumer)} without a callback. */
    public static GenerationResult generate(CausalLanguageModel model, int[] promptIds, SamplingSettings settings) {
        return generate(model, promptIds, settings, null);
    }

    /**
     * @param promptIds at least one token id, fewer than the model's context
     * @param onToken   told each generated id as soon as it is picked, the stop token included; or null
     * @throws IllegalArgumentException if the prompt is empty, leaves no room in the context, or holds
     *                                  an id outside the vocabulary, or a stop id is outside it
     */
    public static GenerationResult generate(CausalLanguageModel model, int[] promptIds, SamplingSettings settings,
                                            IntConsumer onToken) {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(promptIds, "promptIds");
        Objects.requireNonNull(settings, "settings");
        int context = model.config().maxPositions();
        int vocab = model.config().vocabSize();
        if (promptIds.length == 0) {
            throw new IllegalArgumentException("the prompt must hold at least one token");
        }
        if (promptIds.length >= context) {
            throw new IllegalArgumentException("a prompt of " + promptIds.length
                    + " tokens leaves no room for a new one in the model's context of " + context);
        }
        for (int stop : settings.stopTokenIds()) {
            if (stop >= vocab) {
                throw new IllegalArgumentException("stop token id " + stop + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        int limit = Math.min(settings.maxNewTokens(), context - promptIds.length);
        // The last generated token is never fed back, so the cache needs one slot fewer than the sequence.
        CausalLanguageModel.KvCache cache = model.newKvCache(promptIds.length + limit - 1);
        Sampler sampler = new Sampler(settings, vocab);
        int[] generated = new int[limit];
        int[] next = new int[1];
        float[] logits = model.decode(cache, promptIds);
        int count = 0;
        while (true) {
            int token = sampler.sample(logits);
            generated[count++] = token;
            if (onToken != null) {
                onToken.accept(token);
            }
            if (settings.stopTokenIds().contains(token)) {
                return new GenerationResult(Arrays.copyOf(generated, count), GenerationResult.FinishReason.STOP);
            }
            if (count == limit) {
                return new GenerationResult(generated, GenerationResult.FinishReason.LENGTH);
            }
            next[0] = token;
            logits = model.decode(cache, next);
        }
    }
}
