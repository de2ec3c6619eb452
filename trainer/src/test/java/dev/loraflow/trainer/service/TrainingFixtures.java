package dev.loraflow.trainer.service;

import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.DecoderConfig.Family;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.model.RopeScaling;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.TrainingJob;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A tiny base model, a job on it, examples, and the adapter `./loraflow train --no-shuffle` makes of them. */
public final class TrainingFixtures {

    public static final String BASE = "tiny-gpt2";
    public static final int VOCAB = 300;

    private TrainingFixtures() {}

    /**
     * A tiny base of every decoder family beside the GPT-2 one, named tiny-&lt;model_type&gt;: each with the
     * flags that make it that family (Llama 3's scaled RoPE, Qwen2's biases, windows shorter than the
     * sequences, Gemma's norms and caps, Phi-3's fused projections).
     */
    public static final Map<String, DecoderConfig> FAMILY_BASES = familyBases();

    private static Map<String, DecoderConfig> familyBases() {
        Map<String, DecoderConfig> bases = new LinkedHashMap<>();
        bases.put("tiny-llama3", DecoderConfig.of(Family.LLAMA, VOCAB, 32, 64, 2, 4, 2, 8, 32, 1e-5, 500000, false)
                .withRopeScaling(RopeScaling.llama3(8, 1, 4, 16)));
        bases.put("tiny-qwen2", DecoderConfig.of(Family.QWEN2, VOCAB, 32, 64, 2, 4, 2, 8, 32, 1e-6, 1e6, true));
        bases.put("tiny-mistral", DecoderConfig.of(Family.MISTRAL, VOCAB, 32, 64, 2, 4, 2, 8, 32, 1e-5, 1e6, false)
                .withSlidingWindow(5));
        bases.put("tiny-gemma", DecoderConfig.of(Family.GEMMA, VOCAB, 32, 64, 2, 4, 1, 16, 32, 1e-6, 10000, true));
        bases.put("tiny-gemma2", DecoderConfig.of(Family.GEMMA2, VOCAB, 32, 64, 2, 4, 2, 16, 32, 1e-6, 10000, true)
                .withSlidingWindow(5));
        bases.put("tiny-phi3", DecoderConfig.of(Family.PHI3, VOCAB, 32, 64, 2, 4, 2, 8, 32, 1e-5, 10000, false)
                .withSlidingWindow(6));
        return Collections.unmodifiableMap(bases);
    }

    public static void writeBase(Path modelsRoot) throws IOException {
        RandomModel.write(new Gpt2Config(VOCAB, 32, 32, 2, 4, 64, 1e-5), 5, modelsRoot.resolve(BASE));
    }

    /** Writes {@link #FAMILY_BASES}, each under its name. */
    public static void writeFamilyBases(Path modelsRoot) throws IOException {
        for (var base : FAMILY_BASES.entrySet()) {
            RandomModel.write(base.getValue(), 5, modelsRoot.resolve(base.getKey()));
        }
    }

    public static TrainingJob job(String id, long totalSteps, long checkpointEvery) {
        return job(id, BASE, totalSteps, checkpointEvery);
    }

    /** A job on the named base. */
    public static TrainingJob job(String id, String baseModel, long totalSteps, long checkpointEvery) {
        String json = """
                {"schema": "loraflow.training.job", "version": 1, "job_id": "%s", "base_model": "%s",
                 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"},
                 "optimizer": {"lr": 0.01, "schedule": "%s", "warmup_steps": 2},
                 "batch_size": 2, "seq_len": 12, "grad_accum": 2, "seed": 7, "total_steps": %d,
                 "checkpoint": {"every_steps": %d, "at_end": true}}
                """.formatted(id, baseModel, totalSteps == 0 ? "constant" : "cosine", totalSteps, checkpointEvery);
        try {
            return TrainingJob.parse(json.getBytes(StandardCharsets.UTF_8));
        } catch (EventFormatException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Examples of varied length, some with masked labels. */
    public static List<Example> examples(int count, long seed) {
        Rng rng = new Rng(seed);
        List<Example> examples = new ArrayList<>();
        for (int e = 0; e < count; e++) {
            int length = 3 + (int) Math.floorMod(rng.nextLong(), 12);
            int[] ids = new int[length];
            int[] labels = new int[length];
            for (int t = 0; t < length; t++) {
                ids[t] = (int) Math.floorMod(rng.nextLong(), VOCAB);
                labels[t] = t < 2 ? -100 : ids[t];
            }
            examples.add(new Example(ids, labels));
        }
        return examples;
    }

    /** What the CLI computes for the same job over the same examples in file order, written to {@code out}. */
    public static void trainDirectly(BaseModels.Base base, TrainingJob job, List<Example> examples, Path out)
            throws IOException {
        CausalLanguageModel model = base.model(job.loraConfig(base.config(), job.baseModel()), job.seed(),
                job.quantization());
        Trainer trainer = new Trainer(model, job.trainingSettings(), "reference");
        BatchSampler sampler = new BatchSampler(examples, job.batchSize(), job.seqLen(), base.padId(), job.seed(), false, 0);
        for (long step = 0; step < job.totalSteps(); step++) {
            trainer.step(sampler);
        }
        trainer.save(out);
    }
}
