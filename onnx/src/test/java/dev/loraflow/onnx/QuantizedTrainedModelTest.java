package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.train.LearningRateSchedule;
import dev.loraflow.core.train.PermutationTask;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.core.train.TrainingSettings;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import dev.loraflow.onnx.OnnxVerifier.QuantizedBounds;
import dev.loraflow.onnx.WeightQuantization.Precision;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A model trained on a task its base cannot do (core's TrainerTest task: a, π(a), b, π(b), … for a fixed
 * permutation π) keeps it when exported int8 and int4, merged and un-merged: ≥ 95 % held-out next-token
 * accuracy from ONNX Runtime's logits, and the held-out loss within the default bounds.
 */
class QuantizedTrainedModelTest {

    private static final int VOCAB = PermutationTask.VOCAB;
    private static final int PAIRS = PermutationTask.PAIRS;

    @TempDir
    Path dir;

    static Stream<Arguments> architectures() {
        return Stream.of(
                Arguments.of("gpt2", PermutationTask.gpt2()),
                Arguments.of("llama", PermutationTask.llama()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void aTrainedAdapterKeepsItsHeldOutAccuracyAtInt8AndInt4(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = PermutationTask.initialWeights(config, 1);
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(8).loraAlpha(16)
                .targetModules(new LoraAdapterConfig.TargetModules.AllLinear()).build();
        CausalLanguageModel model = CausalLanguageModel.create(config, weights, lora, 2);
        List<Example> train = PermutationTask.examples(256, 7);
        List<Example> heldOut = PermutationTask.examples(64, 8);
        long steps = 300;
        TrainingSettings settings = new TrainingSettings(steps, 8, 2 * PAIRS, 1,
                new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, 1e-2, 10, steps),
                new AdamW.Settings(0.9f, 0.999f, 1e-8f, 0f), 1.0, 42);
        Trainer trainer = new Trainer(model, settings, Trainer.fingerprint(train));
        BatchSampler sampler = new BatchSampler(train, settings.batchSize(), settings.seqLen(), 0, settings.seed(), 0);
        while (!trainer.finished()) {
            trainer.step(sampler);
        }
        Map<String, FloatTensor> adapterFeeds = LoraInputs.of(model.toPeftAdapter());
        double f32Accuracy = accuracy(dir.resolve("f32.onnx"), model, weights, WeightQuantization.none(), false, adapterFeeds, heldOut);
        assertTrue(f32Accuracy >= 0.95, arch + ": the F32 graph's held-out accuracy " + f32Accuracy);
        for (Precision precision : List.of(Precision.INT8, Precision.INT4)) {
            for (boolean unmerged : new boolean[] {false, true}) {
                WeightQuantization quantization = WeightQuantization.of(precision);
                Path file = dir.resolve(precision.label() + (unmerged ? "-unmerged" : "") + ".onnx");
                double accuracy = accuracy(file, model, weights, quantization, unmerged, adapterFeeds, heldOut);
                String label = arch + " " + precision.label() + (unmerged ? " un-merged" : " merged");
                assertTrue(accuracy >= 0.95, label + ": held-out accuracy " + accuracy + " (F32 " + f32Accuracy + ")");
                OnnxVerifier.QuantizedResult check = OnnxVerifier.verifyQuantized(file, model, heldOut, 0,
                        unmerged ? adapterFeeds : Map.of(), QuantizedBounds.defaults(precision), 1);
                assertTrue(check.passed() && check.hasLoss(), label + ": " + check.summary());
            }
        }
    }

    /** Exports the model as asked and returns the graph's held-out next-token accuracy over the counted positions. */
    private static double accuracy(Path file, CausalLanguageModel model, Map<String, float[]> weights,
                                   WeightQuantization quantization, boolean unmerged, Map<String, FloatTensor> adapterFeeds,
                                   List<Example> examples) throws Exception {
        OnnxExporter.export(model, weights, Options.defaults().withUnmerged(unmerged).withQuantization(quantization),
                new Provenance(null, null, null), file);
        int seq = 2 * PAIRS;
        long[][] ids = new long[examples.size()][seq];
        long[][] mask = new long[examples.size()][seq];
        for (int e = 0; e < examples.size(); e++) {
            int[] tokens = examples.get(e).inputIds();
            for (int t = 0; t < seq; t++) {
                ids[e][t] = tokens[t];
                mask[e][t] = 1;
            }
        }
        float[] logits = OrtRuns.prefillLogits(file, model.config(), ids, mask, unmerged ? adapterFeeds : Map.of());
        int correct = 0;
        int counted = 0;
        for (int e = 0; e < examples.size(); e++) {
            int[] labels = examples.get(e).labels();
            for (int t = 0; t + 1 < seq; t++) {
                if (labels[t + 1] == Softmax.IGNORE_INDEX) {
                    continue;
                }
                int row = (e * seq + t) * VOCAB;
                int best = 0;
                for (int v = 1; v < VOCAB; v++) {
                    best = logits[row + v] > logits[row + best] ? v : best;
                }
                correct += best == labels[t + 1] ? 1 : 0;
                counted++;
            }
        }
        return (double) correct / counted;
    }
}
