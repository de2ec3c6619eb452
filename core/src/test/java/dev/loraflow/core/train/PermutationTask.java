package dev.loraflow.core.train;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.WeightSpec;
import dev.loraflow.core.random.Rng;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A task a LoRA adapter must learn, for the tests that train one ({@link TrainerTest}, onnx's
 * QuantizedTrainedModelTest): sequences a, π(a), b, π(b), … for a fixed permutation π of a 16-token
 * vocabulary, the loss on the π positions only. A base model knows nothing of π, so it starts at chance (1/V).
 */
public final class PermutationTask {

    public static final int VOCAB = 16;
    public static final int PAIRS = 6;
    /** Tokens in an example: {@link #PAIRS} pairs. */
    public static final int SEQ_LEN = 2 * PAIRS;
    private static final long PERMUTATION_SEED = 1234;

    private PermutationTask() {}

    /** A tiny GPT-2 for the task. */
    public static Gpt2Config gpt2() {
        return new Gpt2Config(VOCAB, SEQ_LEN, 32, 2, 4, 64, 1e-5);
    }

    /** A tiny Llama for the task. */
    public static DecoderConfig llama() {
        return DecoderConfig.llama(VOCAB, 32, 64, 2, 4, 2, 8, SEQ_LEN, 1e-5, 10000, false);
    }

    /** {@code count} examples, their tokens drawn from {@code seed}. */
    public static List<Example> examples(int count, long seed) {
        int[] permutation = permutation(PERMUTATION_SEED);
        Rng rng = new Rng(seed);
        List<Example> examples = new ArrayList<>();
        for (int e = 0; e < count; e++) {
            int[] ids = new int[SEQ_LEN];
            int[] labels = new int[SEQ_LEN];
            for (int p = 0; p < PAIRS; p++) {
                int token = (int) Math.floorMod(rng.nextLong(), VOCAB);
                ids[2 * p] = token;
                ids[2 * p + 1] = permutation[token];
                labels[2 * p] = Softmax.IGNORE_INDEX;
                labels[2 * p + 1] = permutation[token];
            }
            examples.add(new Example(ids, labels));
        }
        return examples;
    }

    /** Weights as Transformers initialises them: N(0, 0.02) matrices, unit norms, zero biases. */
    public static Map<String, float[]> initialWeights(ModelConfig config, long seed) {
        Rng rng = new Rng(seed);
        Map<String, float[]> weights = new LinkedHashMap<>();
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            float[] values = new float[Math.toIntExact(spec.numel())];
            for (int i = 0; i < values.length; i++) {
                values[i] = switch (spec.role()) {
                    case NORM_WEIGHT -> 1f;
                    case NORM_BIAS, LINEAR_BIAS -> 0f;
                    default -> (float) (0.02 * rng.nextGaussian());
                };
            }
            weights.put(spec.name(), values);
        }
        return weights;
    }

    private static int[] permutation(long seed) {
        Rng rng = new Rng(seed);
        int[] permutation = new int[VOCAB];
        Arrays.setAll(permutation, i -> i);
        for (int i = VOCAB - 1; i > 0; i--) {
            int j = (int) Math.floorMod(rng.nextLong(), i + 1);
            int swap = permutation[i];
            permutation[i] = permutation[j];
            permutation[j] = swap;
        }
        return permutation;
    }
}
