package dev.loraflow.core.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.TinyModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class GeneratorTest {

    static Stream<Arguments> models() {
        return Stream.of(Arguments.of("gpt2", TinyModels.GPT2), Arguments.of("llama", TinyModels.LLAMA));
    }

    /** The last row of the full forward over the whole sequence so far: generation without a cache. */
    private static float[] recomputedLogits(CausalLanguageModel model, int[] prompt, int[] generated, int steps) {
        int[] sequence = Arrays.copyOf(prompt, prompt.length + steps);
        System.arraycopy(generated, 0, sequence, prompt.length, steps);
        float[] all = TinyModels.forwardLogits(model, sequence);
        int vocab = model.config().vocabSize();
        return Arrays.copyOfRange(all, (sequence.length - 1) * vocab, sequence.length * vocab);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void greedyPicksTheArgmaxOfAFullRecomputeAtEachStep(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 1);
        int[] prompt = TinyModels.randomIds(5, config.vocabSize(), 2);
        GenerationResult result = Generator.generate(model, prompt, SamplingSettings.greedy(12, Set.of()));
        int[] tokens = result.tokens();
        assertEquals(FinishReason.LENGTH, result.finishReason());
        assertEquals(12, tokens.length);
        for (int step = 0; step < tokens.length; step++) {
            assertEquals(Sampler.argmax(recomputedLogits(model, prompt, tokens, step)), tokens[step], "step " + step);
        }
    }

    /** The cache changes nothing a sampler sees: the same settings over recomputed logits draw the same tokens. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void samplingDrawsWhatItWouldFromAFullRecompute(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 3);
        int[] prompt = TinyModels.randomIds(4, config.vocabSize(), 4);
        SamplingSettings settings = new SamplingSettings(15, 0.9, 12, 0.9, 77, Set.of());
        int[] tokens = Generator.generate(model, prompt, settings).tokens();
        Sampler reference = new Sampler(settings, config.vocabSize());
        for (int step = 0; step < tokens.length; step++) {
            assertEquals(reference.sample(recomputedLogits(model, prompt, tokens, step)), tokens[step], "step " + step);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void theSameSeedGivesTheSameTokens(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 5);
        int[] prompt = TinyModels.randomIds(3, config.vocabSize(), 6);
        GenerationResult first = Generator.generate(model, prompt, new SamplingSettings(20, 1.0, 0, 1, 8, Set.of()));
        assertEquals(first, Generator.generate(model, prompt, new SamplingSettings(20, 1.0, 0, 1, 8, Set.of())));
        assertNotEquals(first, Generator.generate(model, prompt, new SamplingSettings(20, 1.0, 0, 1, 9, Set.of())));
    }

    /** Stops right after the first stop token, which ends the output as in Hugging Face's; the callback sees it too. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void stopsAtAStopTokenAndIncludesIt(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 7);
        int[] prompt = TinyModels.randomIds(4, config.vocabSize(), 8);
        int[] free = Generator.generate(model, prompt, SamplingSettings.greedy(10, Set.of())).tokens();
        int eos = free[3];
        int firstEos = 0;
        while (free[firstEos] != eos) {
            firstEos++;
        }
        int neverGenerated = IntStream.range(0, config.vocabSize())
                .filter(id -> Arrays.stream(free).noneMatch(token -> token == id)).findFirst().orElseThrow();
        List<Integer> seen = new ArrayList<>();
        GenerationResult stopped = Generator.generate(model, prompt,
                SamplingSettings.greedy(10, Set.of(eos, neverGenerated)), seen::add);
        assertEquals(FinishReason.STOP, stopped.finishReason());
        assertArrayEquals(Arrays.copyOf(free, firstEos + 1), stopped.tokens());
        assertEquals(Arrays.stream(stopped.tokens()).boxed().toList(), seen);
    }

    /** The sequence stops at the model's context, so that it can still be fed back whole. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void stopsWhenTheSequenceFillsTheContext(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 9);
        int context = config.maxPositions();
        int[] prompt = TinyModels.randomIds(context - 3, config.vocabSize(), 10);
        GenerationResult result = Generator.generate(model, prompt, new SamplingSettings(10, 1.0, 0, 1, 3, Set.of()));
        assertEquals(FinishReason.LENGTH, result.finishReason());
        assertEquals(3, result.tokens().length);
        GenerationResult oneLeft = Generator.generate(model, Arrays.copyOf(prompt, context - 1),
                SamplingSettings.greedy(5, Set.of()));
        assertEquals(1, oneLeft.tokens().length);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void rejectsPromptsAndStopTokensTheModelCannotTake(String arch, ModelConfig config) {
        CausalLanguageModel model = TinyModels.adapted(config, 11);
        int vocab = config.vocabSize();
        SamplingSettings greedy = SamplingSettings.greedy(3, Set.of());
        assertMessage("the prompt must hold", () -> Generator.generate(model, new int[0], greedy));
        int[] full = new int[config.maxPositions()];
        assertMessage("a prompt of " + full.length + " tokens leaves no room",
                () -> Generator.generate(model, full, greedy));
        assertMessage("token id " + vocab, () -> Generator.generate(model, new int[] {1, vocab}, greedy));
        assertMessage("stop token id " + vocab,
                () -> Generator.generate(model, new int[] {1}, SamplingSettings.greedy(3, Set.of(vocab))));
    }

    private static void assertMessage(String prefix, org.junit.jupiter.api.function.Executable executable) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, executable);
        assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
    }
}
