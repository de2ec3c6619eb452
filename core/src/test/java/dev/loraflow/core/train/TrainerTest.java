package dev.loraflow.core.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.DecoderConfig.Family;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RopeScaling;
import dev.loraflow.core.model.WeightSpec;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class TrainerTest {

    private static final int VOCAB = PermutationTask.VOCAB;
    private static final int PAIRS = PermutationTask.PAIRS;
    private static final String BASE_SHA256 = "ab".repeat(32);

    @TempDir
    Path temp;

    static Stream<Arguments> architectures() {
        Gpt2Config gpt2 = PermutationTask.gpt2();
        DecoderConfig llama = PermutationTask.llama();
        LoraAdapterConfig allLinear = LoraAdapterConfig.builder().r(8).loraAlpha(16)
                .targetModules(new LoraAdapterConfig.TargetModules.AllLinear()).build();
        // Every other decoder family with its defining flags: Llama 3's scaled RoPE, Qwen2's biases, windows
        // shorter than the sequence (Mistral, Gemma 2, Phi-3), Gemma's norms and caps, Phi-3's fused projections.
        Stream<Arguments> families = Stream.of(
                DecoderConfig.of(Family.LLAMA, VOCAB, 32, 64, 2, 4, 2, 8, 2 * PAIRS, 1e-5, 500000, false)
                        .withRopeScaling(RopeScaling.llama3(8, 1, 4, 8)),
                DecoderConfig.of(Family.QWEN2, VOCAB, 32, 64, 2, 4, 2, 8, 2 * PAIRS, 1e-6, 1e6, true),
                DecoderConfig.of(Family.MISTRAL, VOCAB, 32, 64, 2, 4, 2, 8, 2 * PAIRS, 1e-5, 1e6, false)
                        .withSlidingWindow(4),
                DecoderConfig.of(Family.GEMMA, VOCAB, 32, 64, 2, 4, 1, 16, 2 * PAIRS, 1e-6, 10000, true),
                DecoderConfig.of(Family.GEMMA2, VOCAB, 32, 64, 2, 4, 2, 16, 2 * PAIRS, 1e-6, 10000, true)
                        .withSlidingWindow(4),
                DecoderConfig.of(Family.PHI3, VOCAB, 32, 64, 2, 4, 2, 8, 2 * PAIRS, 1e-5, 10000, false)
                        .withSlidingWindow(6))
                .map(config -> Arguments.of(config.modelType() + (config.ropeScaling() != null ? "3" : ""), config,
                        allLinear));
        return Stream.concat(Stream.of(Arguments.of("gpt2", gpt2, allLinear), Arguments.of("llama", llama, allLinear)),
                families);
    }

    /** GPT-2 and Llama: QLoRA's quantized base is the same for every decoder family. */
    static Stream<Arguments> qloraArchitectures() {
        return architectures().limit(2);
    }

    /** Argmax next-token accuracy over the counted positions. */
    static double accuracy(CausalLanguageModel model, List<Example> examples) {
        int seqLen = examples.getFirst().inputIds().length;
        CausalLanguageModel.Workspace ws = model.newWorkspace(1, seqLen);
        int correct = 0;
        int counted = 0;
        for (Example example : examples) {
            model.forward(ws, example.inputIds(), null, false, 0);
            float[] logits = ws.logits();
            for (int t = 0; t + 1 < seqLen; t++) {
                int target = example.labels()[t + 1];
                if (target == Softmax.IGNORE_INDEX) {
                    continue;
                }
                int best = 0;
                for (int v = 1; v < VOCAB; v++) {
                    best = logits[t * VOCAB + v] > logits[t * VOCAB + best] ? v : best;
                }
                correct += best == target ? 1 : 0;
                counted++;
            }
        }
        return (double) correct / counted;
    }

    /**
     * The model with its linear weights quantized as {@code train --quantize} quantizes them (embeddings,
     * norms and biases stay float32).
     */
    static CausalLanguageModel quantizedModel(ModelConfig config, Map<String, float[]> weights, Quantization quantization,
                                              LoraAdapterConfig lora, long seed) {
        Map<String, float[]> arrays = new LinkedHashMap<>();
        Map<String, FrozenMatrix> frozen = new LinkedHashMap<>();
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            float[] values = weights.get(spec.name());
            if (spec.role() == WeightSpec.Role.LINEAR_WEIGHT) {
                FrozenMatrix matrix = FrozenMatrix.of(values, (int) spec.shape()[0], (int) spec.shape()[1]);
                frozen.put(spec.name(), quantization.apply(matrix, Arena.ofAuto()));
            } else {
                arrays.put(spec.name(), values);
            }
        }
        return CausalLanguageModel.create(config, arrays, frozen, lora, seed);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("qloraArchitectures")
    void qloraOnAnNf4BaseLearnsTheTaskAndResumesBitIdentically(String arch, ModelConfig config, LoraAdapterConfig lora)
            throws IOException {
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        List<Example> train = PermutationTask.examples(256, 7);
        List<Example> heldOut = PermutationTask.examples(64, 8);
        CausalLanguageModel model = quantizedModel(config, weights, Quantization.NF4, lora, 2);
        TrainingSettings settings = settings(300, 1);
        Trainer trainer = new Trainer(model, settings, Trainer.fingerprint(train));
        BatchSampler sampler = sampler(train, settings, 0);
        while (!trainer.finished()) {
            trainer.step(sampler);
        }
        double trained = accuracy(model, heldOut);
        assertTrue(trained >= 0.95, arch + " on NF4: held-out next-token accuracy after QLoRA training " + trained);

        // resumed half way on a freshly quantized base: the same adapter bytes
        List<Example> data = PermutationTask.examples(20, 7);
        TrainingSettings short_ = settings(6, 2);
        LoraAdapterConfig withDropout = lora.toBuilder().loraDropout(0.1).build();
        Trainer straight = new Trainer(quantizedModel(config, weights, Quantization.NF4, withDropout, 2), short_,
                Trainer.fingerprint(data));
        BatchSampler straightData = sampler(data, short_, 0);
        while (!straight.finished()) {
            straight.step(straightData);
        }
        straight.save(temp.resolve("straight"));
        Trainer firstHalf = new Trainer(quantizedModel(config, weights, Quantization.NF4, withDropout, 2), short_,
                Trainer.fingerprint(data));
        BatchSampler firstData = sampler(data, short_, 0);
        for (int i = 0; i < 3; i++) {
            firstHalf.step(firstData);
        }
        firstHalf.save(temp.resolve("resumed"));
        Trainer secondHalf = new Trainer(quantizedModel(config, weights, Quantization.NF4, withDropout, 99), short_,
                Trainer.fingerprint(data));
        secondHalf.restore(temp.resolve("resumed"));
        BatchSampler secondData = sampler(data, short_, secondHalf.dataPosition());
        while (!secondHalf.finished()) {
            secondHalf.step(secondData);
        }
        secondHalf.save(temp.resolve("resumed"));
        for (String file : List.of(PeftAdapter.WEIGHTS_FILE, TrainingCheckpoint.OPTIMIZER_FILE)) {
            assertArrayEquals(Files.readAllBytes(temp.resolve("straight").resolve(file)),
                    Files.readAllBytes(temp.resolve("resumed").resolve(file)), file);
        }
    }

    private static BatchSampler sampler(List<Example> examples, TrainingSettings settings, long position) {
        return new BatchSampler(examples, settings.batchSize(), settings.seqLen(), 0, settings.seed(), position);
    }

    /** A trainer whose base digest is known from the start, as the trainer service's is. */
    private static Trainer trainer(ModelConfig config, Map<String, float[]> weights, LoraAdapterConfig lora, long seed,
                                   List<Example> data, TrainingSettings settings) {
        return trainer(config, weights, lora, seed, data, settings, CompletableFuture.completedFuture(BASE_SHA256));
    }

    /** @param baseSha256 the base's digest, perhaps not yet taken; null for a run that does not know it */
    private static Trainer trainer(ModelConfig config, Map<String, float[]> weights, LoraAdapterConfig lora, long seed,
                                   List<Example> data, TrainingSettings settings, CompletableFuture<String> baseSha256) {
        return new Trainer(CausalLanguageModel.create(config, weights, lora, seed), settings, Trainer.fingerprint(data),
                baseSha256);
    }

    private static TrainingSettings settings(long steps, int gradAccum) {
        return new TrainingSettings(steps, 8, 2 * PAIRS, gradAccum,
                new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, 1e-2, 10, steps),
                new AdamW.Settings(0.9f, 0.999f, 1e-8f, 0f), 1.0, 42);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void theAdapterLearnsATaskTheBaseCannotDoAndTheBaseStaysBitForBit(String arch, ModelConfig config,
                                                                    LoraAdapterConfig lora) {
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        Map<String, float[]> before = new HashMap<>();
        weights.forEach((name, value) -> before.put(name, value.clone()));
        CausalLanguageModel model = CausalLanguageModel.create(config, weights, lora, 2);
        List<Example> train = PermutationTask.examples(256, 7);
        List<Example> heldOut = PermutationTask.examples(64, 8);
        double initial = accuracy(model, heldOut);
        assertTrue(initial < 0.25, "starts near chance (1/" + VOCAB + "), got " + initial);

        TrainingSettings settings = settings(300, 1);
        Trainer trainer = new Trainer(model, settings, Trainer.fingerprint(train));
        BatchSampler sampler = sampler(train, settings, 0);
        Trainer.StepResult first = trainer.step(sampler);
        Trainer.StepResult last = first;
        while (!trainer.finished()) {
            last = trainer.step(sampler);
        }
        double trained = accuracy(model, heldOut);
        assertTrue(trained >= 0.95, arch + ": held-out next-token accuracy after LoRA training " + trained
                + " (loss " + first.loss() + " → " + last.loss() + ")");
        weights.forEach((name, value) -> assertArrayEquals(before.get(name), value, name + " changed"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void aResumedRunWritesTheSameAdapterBytesAsAnUninterruptedOne(String arch, ModelConfig config, LoraAdapterConfig lora)
            throws IOException {
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        List<Example> data = PermutationTask.examples(20, 7);
        LoraAdapterConfig withDropout = lora.toBuilder().loraDropout(0.1).build();
        TrainingSettings settings = settings(6, 2);

        Trainer straight = trainer(config, weights, withDropout, 2, data, settings);
        BatchSampler straightData = sampler(data, settings, 0);
        while (!straight.finished()) {
            straight.step(straightData);
        }
        straight.save(temp.resolve("straight"));

        Trainer firstHalf = trainer(config, weights, withDropout, 2, data, settings);
        BatchSampler firstData = sampler(data, settings, 0);
        for (int i = 0; i < 3; i++) {
            firstHalf.step(firstData);
        }
        firstHalf.save(temp.resolve("resumed"));
        Trainer secondHalf = trainer(config, weights, withDropout, 99, data, settings);
        secondHalf.restore(temp.resolve("resumed"));
        assertEquals(3, secondHalf.completedSteps());
        assertEquals(firstData.position(), secondHalf.dataPosition());
        BatchSampler secondData = sampler(data, settings, secondHalf.dataPosition());
        while (!secondHalf.finished()) {
            secondHalf.step(secondData);
        }
        secondHalf.save(temp.resolve("resumed"));

        for (String file : List.of(PeftAdapter.WEIGHTS_FILE, TrainingCheckpoint.OPTIMIZER_FILE, PeftAdapter.CONFIG_FILE)) {
            assertArrayEquals(Files.readAllBytes(temp.resolve("straight").resolve(file)),
                    Files.readAllBytes(temp.resolve("resumed").resolve(file)), file);
        }
    }

    @Test
    void resumingWithOtherDataOrSettingsOrADamagedCheckpointIsRefused() throws IOException {
        ModelConfig config = (ModelConfig) architectures().findFirst().orElseThrow().get()[1];
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).build();
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        List<Example> data = PermutationTask.examples(20, 7);
        Trainer trainer = trainer(config, weights, lora, 2, data, settings(4, 1));
        trainer.step(sampler(data, settings(4, 1), 0));
        Path checkpoint = temp.resolve("checkpoint");
        trainer.save(checkpoint);

        Trainer otherData = trainer(config, weights, lora, 2, PermutationTask.examples(20, 8), settings(4, 1));
        assertTrue(assertThrows(TrainingStateException.class, () -> otherData.restore(checkpoint)).getMessage()
                .contains("training data differs"));
        Trainer otherAccumulation = trainer(config, weights, lora, 2, data, settings(4, 2));
        assertTrue(assertThrows(TrainingStateException.class, () -> otherAccumulation.restore(checkpoint)).getMessage()
                .contains("gradient accumulation was 1, now 2"));
        Trainer otherRank = trainer(config, weights, lora.toBuilder().r(3).build(), 2, data, settings(4, 1));
        assertTrue(assertThrows(TrainingStateException.class, () -> otherRank.restore(checkpoint)).getMessage()
                .contains("does not fit the model"));

        Path weightsFile = checkpoint.resolve(PeftAdapter.WEIGHTS_FILE);
        byte[] bytes = Files.readAllBytes(weightsFile);
        bytes[bytes.length - 1] ^= 1;
        Files.write(weightsFile, bytes);
        Trainer fresh = trainer(config, weights, lora, 2, data, settings(4, 1));
        assertTrue(assertThrows(TrainingStateException.class, () -> fresh.restore(checkpoint)).getMessage()
                .contains("does not match"));
        assertTrue(assertThrows(TrainingStateException.class, () -> fresh.restore(temp)).getMessage()
                .contains("not a training checkpoint"));
        Files.writeString(checkpoint.resolve(TrainingCheckpoint.STATE_FILE), "{\"format\": 3");
        assertTrue(assertThrows(TrainingStateException.class, () -> fresh.restore(checkpoint)).getMessage()
                .contains("not valid JSON"));
    }

    @Test
    void checkpointsRecordTheBaseDigestAndARunResumedOnAnotherBaseStops() throws IOException {
        ModelConfig config = (ModelConfig) architectures().findFirst().orElseThrow().get()[1];
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).build();
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        List<Example> data = PermutationTask.examples(20, 7);
        TrainingSettings settings = settings(4, 1);
        CompletableFuture<String> base = new CompletableFuture<>();
        Trainer trainer = trainer(config, weights, lora, 2, data, settings, base);
        trainer.step(sampler(data, settings, 0));
        assertFalse(base.isDone(), "a step does not wait for the base's digest");
        base.complete(BASE_SHA256);
        Path checkpoint = temp.resolve("checkpoint");
        trainer.save(checkpoint);
        assertEquals(Optional.of(BASE_SHA256), TrainingCheckpoint.recordedBaseSha256(checkpoint));
        assertEquals(Optional.empty(), TrainingCheckpoint.recordedBaseSha256(temp), "not a training checkpoint");
        Path stateFile = checkpoint.resolve(TrainingCheckpoint.STATE_FILE);
        byte[] state = Files.readAllBytes(stateFile);

        // resumed on another base: it trains on until the digest is known, then stops and writes nothing
        CompletableFuture<String> otherBase = new CompletableFuture<>();
        Trainer elsewhere = trainer(config, weights, lora, 2, data, settings, otherBase);
        elsewhere.restore(checkpoint);
        BatchSampler resumed = sampler(data, settings, elsewhere.dataPosition());
        elsewhere.step(resumed);
        otherBase.complete("cd".repeat(32));
        assertTrue(assertThrows(IllegalStateException.class, () -> elsewhere.step(resumed)).getMessage()
                .contains("trained on the base model with SHA-256 " + BASE_SHA256));
        assertTrue(assertThrows(TrainingStateException.class, () -> elsewhere.save(checkpoint)).getMessage()
                .contains("resume the run on the base it started on"));
        assertArrayEquals(state, Files.readAllBytes(stateFile), "the checkpoint is left as it was");

        Trainer unaware = trainer(config, weights, lora, 2, data, settings, null);
        unaware.restore(checkpoint);
        unaware.step(sampler(data, settings, unaware.dataPosition()));
        unaware.save(temp.resolve("carried"));
        assertEquals(Optional.of(BASE_SHA256), TrainingCheckpoint.recordedBaseSha256(temp.resolve("carried")),
                "a run that does not know its base carries its checkpoint's forward");

        Trainer unreadable = trainer(config, weights, lora, 2, data, settings,
                CompletableFuture.failedFuture(new IOException("base gone")));
        assertTrue(assertThrows(IOException.class, () -> unreadable.save(temp.resolve("never"))).getMessage()
                .contains("base gone"));
        assertFalse(Files.exists(temp.resolve("never")));

        Files.writeString(stateFile, new String(state, StandardCharsets.UTF_8).replace(BASE_SHA256, "not hex"));
        assertTrue(assertThrows(TrainingStateException.class, () -> TrainingCheckpoint.recordedBaseSha256(checkpoint))
                .getMessage().contains("64 lower-case hex digits"));
    }

    @Test
    void aModelWithoutAdapterOrBatchesOfTheWrongShapeAreNotTrained() {
        ModelConfig config = (ModelConfig) architectures().findFirst().orElseThrow().get()[1];
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).build();
        List<Example> data = PermutationTask.examples(4, 1);
        assertThrows(IllegalArgumentException.class, () -> trainer(config, weights, null, 2, data, settings(4, 1)));
        Trainer trainer = trainer(config, weights, lora, 2, data, settings(1, 2));
        BatchSampler sampler = sampler(data, settings(1, 2), 0);
        assertThrows(IllegalArgumentException.class, () -> trainer.step(List.of(sampler.next()), 8), "one of two micro-batches");
        BatchSampler narrow = new BatchSampler(data, 3, 2 * PAIRS, 0, 1, 0);
        assertThrows(IllegalArgumentException.class, () -> trainer.step(List.of(narrow.next(), narrow.next()), 6));
        BatchSampler fresh = sampler(data, settings(1, 2), 0);
        trainer.step(fresh);
        assertEquals(16, trainer.dataPosition());
        assertThrows(IllegalStateException.class, () -> trainer.step(fresh));
    }
}
