package dev.loraflow.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.LoraTargets;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.ModelPresets;
import dev.loraflow.core.model.WeightSpec;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.train.LearningRateSchedule;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.core.train.TrainingSettings;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LoRA training throughput of a whole step (forward, backward, clipping, AdamW) on a model of a
 * released shape (GPT-2 small, a Llama of its size, or any {@link ModelPresets} entry) with random weights: the Java half of {@code bench/run-training.sh}, whose PyTorch
 * half ({@code bench/torch_lora_train.py}) runs the same step. A whole training step is seconds long
 * and allocates nothing after the first, so plain wall-clock timing of warm steps is what JMH would
 * measure too; it prints one JSON line with the same fields as the PyTorch script, among them
 * {@code tokens_per_cpu_s}: the tokens over the process's CPU time in the measured steps (every thread, the
 * GC's and the JIT's included), which a shared machine's load does not change as it changes wall time.
 *
 * <p>{@code --arch gpt2|llama|PRESET --batch-size B --seq-len T --steps N --warmup W}
 */
public final class TrainingThroughput {

    private TrainingThroughput() {}

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.TRAINING_THROUGHPUT.run(args, TrainingThroughput::measure);
    }

    private static void measure(BenchmarkCommandLine.Arguments options) throws IOException {
        String arch = options.text("--arch");
        int batch = options.integer("--batch-size");
        int seqLen = options.integer("--seq-len");
        int steps = options.integer("--steps");
        int warmup = options.integer("--warmup");

        // The shapes of bench/torch_lora_train.py: GPT-2 small, a Llama of its size, or any ModelPresets entry
        // (every decoder family: llama-3.2-1b, qwen2.5-0.5b, mistral-7b-v0.3, gemma-2-2b, phi-3-mini-4k, ...).
        ModelConfig config = switch (arch) {
            case "llama" -> DecoderConfig.llama(32000, 768, 2048, 12, 12, 4, 64, 2048, 1e-5, 10000, false);
            default -> {
                try {
                    yield ModelPresets.get(arch);
                } catch (IllegalArgumentException unknown) {
                    throw new BenchmarkCommandLine.UsageException("--arch: " + unknown.getMessage());
                }
            }
        };
        // PEFT's default targets of the model_type: c_attn for GPT-2, q_proj and v_proj (phi3: qkv_proj).
        List<String> targets = LoraTargets.architectureDefault(config);
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(8).loraAlpha(16).loraDropout(0.05)
                .targetModules(targets.toArray(String[]::new)).build();
        CausalLanguageModel model = CausalLanguageModel.create(config, randomWeights(config), lora, 1);

        Rng rng = new Rng(2);
        List<Example> examples = new ArrayList<>();
        for (int e = 0; e < batch * (steps + warmup); e++) {
            int[] ids = new int[seqLen];
            Arrays.setAll(ids, t -> (int) Math.floorMod(rng.nextLong(), config.vocabSize()));
            examples.add(new Example(ids, ids));
        }
        TrainingSettings settings = new TrainingSettings(steps + warmup, batch, seqLen, 1,
                new LearningRateSchedule(LearningRateSchedule.Shape.CONSTANT, 2e-4, 0, steps + warmup),
                new AdamW.Settings(0.9f, 0.999f, 1e-8f, 0.01f), 0, 3);
        Trainer trainer = new Trainer(model, settings, "random tokens");
        BatchSampler sampler = new BatchSampler(examples, batch, seqLen, 0, 3, 0);

        var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        double[] millis = new double[steps];
        double cpuMillis = 0;
        double firstLoss = Double.NaN;
        for (int s = 0; s < warmup + steps; s++) {
            long start = System.nanoTime();
            long cpuStart = os.getProcessCpuTime();
            Trainer.StepResult result = trainer.step(sampler);
            double elapsed = (System.nanoTime() - start) / 1e6;
            double cpu = (os.getProcessCpuTime() - cpuStart) / 1e6;
            if (s == 0) {
                firstLoss = result.loss();
            }
            if (s >= warmup) {
                millis[s - warmup] = elapsed;
                cpuMillis += cpu;
            }
            System.err.printf("step %d: loss %.4f, %.0f ms, %.0f ms of CPU%n", s, result.loss(), elapsed, cpu);
        }
        double[] sorted = millis.clone();
        Arrays.sort(sorted);
        double median = sorted.length % 2 == 1 ? sorted[sorted.length / 2]
                : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;

        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("impl", "loraflow");
        line.put("java", Runtime.version().toString());
        line.put("arch", arch);
        line.put("batch", batch);
        line.put("seq", seqLen);
        // As bench/torch_lora_train.py counts it: all measured tokens over all measured time.
        line.put("tokens_per_s", (double) batch * seqLen * steps / (Arrays.stream(millis).sum() / 1000));
        line.put("step_ms_median", median);
        line.put("tokens_per_cpu_s", (double) batch * seqLen * steps / (cpuMillis / 1000));
        line.put("peak_rss_mb", peakRssMegabytes());
        line.put("first_loss", firstLoss);
        line.put("threads", Runtime.getRuntime().availableProcessors());
        System.out.println(line);
    }

    /** Transformers' initialisation: N(0, 0.02) matrices and embeddings, unit norm weights, zero biases. */
    private static Map<String, float[]> randomWeights(ModelConfig config) {
        Rng rng = new Rng(7);
        Map<String, float[]> weights = new LinkedHashMap<>();
        for (WeightSpec spec : ModelLayout.of(config).weights()) {
            float[] values = new float[Math.toIntExact(spec.numel())];
            switch (spec.role()) {
                // Gemma stores its norm weights as offsets from 1.
                case NORM_WEIGHT -> Arrays.fill(values, config instanceof DecoderConfig decoder
                        && decoder.family().normWeightOffsetByOne() ? 0f : 1f);
                case NORM_BIAS, LINEAR_BIAS -> { }
                default -> {
                    for (int i = 0; i < values.length; i++) {
                        values[i] = (float) (0.02 * rng.nextGaussian());
                    }
                }
            }
            weights.put(spec.name(), values);
        }
        return weights;
    }

    /** VmHWM: the peak resident set of this process, as ru_maxrss reports it for the Python side. */
    private static double peakRssMegabytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
            }
        }
        return Double.NaN;
    }
}
