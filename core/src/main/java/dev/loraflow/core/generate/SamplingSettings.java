package dev.loraflow.core.generate;

import java.util.Objects;
import java.util.Set;

/**
 * How {@link Generator} picks each new token, with Hugging Face's meanings: the logits are divided by
 * the temperature, then top-k and top-p keep the most likely tokens, and the token is drawn from what is
 * left with a stream seeded by {@code seed}.
 *
 * @param maxNewTokens most tokens generated after the prompt, > 0
 * @param temperature  divides the logits, ≥ 0; 0 is greedy: the most likely token, the lowest id on ties
 * @param topK         keeps the k most likely tokens, ≥ 0; 0 keeps all
 * @param topP         keeps the smallest set of most likely tokens whose probability reaches p, in (0, 1];
 *                     1 keeps all
 * @param seed         seeds the draws: the same seed, model and prompt give the same tokens
 * @param stopTokenIds generation stops after generating any of these (EOS); may be empty
 */
public record SamplingSettings(int maxNewTokens, double temperature, int topK, double topP, long seed,
                               Set<Integer> stopTokenIds) {

    /** @throws IllegalArgumentException naming the setting out of its range */
    public SamplingSettings {
        if (maxNewTokens <= 0) {
            throw new IllegalArgumentException("maxNewTokens must be positive, got " + maxNewTokens);
        }
        if (!(temperature >= 0) || !Double.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number ≥ 0 (0 = greedy), got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be ≥ 0 (0 = off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1] (1 = off), got " + topP);
        }
        Objects.requireNonNull(stopTokenIds, "stopTokenIds");
        for (Integer id : stopTokenIds) {
            if (id == null || id < 0) {
                throw new IllegalArgumentException("stop token ids must be token ids ≥ 0, got " + id);
            }
        }
        stopTokenIds = Set.copyOf(stopTokenIds);
    }

    /** The most likely token at every step, no filtering. */
    public static SamplingSettings greedy(int maxNewTokens, Set<Integer> stopTokenIds) {
        return new SamplingSettings(maxNewTokens, 0, 0, 1, 0, stopTokenIds);
    }

    public boolean isGreedy() {
        return temperature == 0;
    }
}
