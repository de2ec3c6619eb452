package dev.loraflow.deploy;

import dev.loraflow.core.data.Example;
import dev.loraflow.platform.events.TrainingBatch;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** What a producer sends the trainers in the end-to-end tests: a job on a base, its examples and their batches. */
final class TrainingTraffic {

    private TrainingTraffic() {}

    /** A job definition of {@code steps} steps (4 examples each: batch 2, accumulation 2), checkpointed every {@code every}. */
    static String jobJson(String job, String base, int steps, int every) {
        return """
                {"schema": "loraflow.training.job", "version": 1, "job_id": "%s", "base_model": "%s",
                 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear"},
                 "optimizer": {"lr": 0.01, "schedule": "cosine", "warmup_steps": 2},
                 "batch_size": 2, "seq_len": 12, "grad_accum": 2, "seed": 7, "total_steps": %d,
                 "checkpoint": {"every_steps": %d, "at_end": true}}
                """.formatted(job, base, steps, every);
    }

    /** The examples in records of 1–3, as a producer might cut them. */
    static List<byte[]> batches(String job, List<Example> examples) {
        List<byte[]> batches = new ArrayList<>();
        int from = 0;
        for (int seq = 0; from < examples.size(); seq++) {
            int to = Math.min(examples.size(), from + 1 + seq % 3);
            batches.add(TrainingBatch.encode(job, seq, examples.subList(from, to)));
            from = to;
        }
        return batches;
    }

    /** Examples of 3 to 12 random ids below {@code vocab}, the first two labels masked. */
    static List<Example> examples(int count, long seed, int vocab) {
        Random random = new Random(seed);
        List<Example> examples = new ArrayList<>();
        for (int e = 0; e < count; e++) {
            int[] ids = new int[3 + random.nextInt(10)];
            int[] labels = new int[ids.length];
            for (int t = 0; t < ids.length; t++) {
                ids[t] = random.nextInt(vocab);
                labels[t] = t < 2 ? -100 : ids[t];
            }
            examples.add(new Example(ids, labels));
        }
        return examples;
    }
}
