package dev.loraflow.trainer.service;

import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.TrainingJob;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** A tiny base model, a job on it, examples, and the adapter `./loraflow train --no-shuffle` makes of them. */
public final class TrainingFixtures {

    public static final String BASE = "tiny-gpt2";
    public static final int VOCAB = 300;

    private TrainingFixtures() {}

    public static void writeBase(Path modelsRoot) throws IOException {
        RandomModel.write(new Gpt2Config(VOCAB, 32, 32, 2, 4, 64, 1e-5), 5, modelsRoot.resolve(BASE));
    }

    public static TrainingJob job(String id, long totalSteps, long checkpointEvery) {
        String json = """
                {"schema": "loraflow.training.job", "version": 1, "job_id": "%s", "base_model": "%s",
                 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"},
                 "optimizer": {"lr": 0.01, "schedule": "%s", "warmup_steps": 2},
                 "batch_size": 2, "seq_len": 12, "grad_accum": 2, "seed": 7, "total_steps": %d,
                 "checkpoint": {"every_steps": %d, "at_end": true}}
                """.formatted(id, BASE, totalSteps == 0 ? "constant" : "cosine", totalSteps, checkpointEvery);
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
