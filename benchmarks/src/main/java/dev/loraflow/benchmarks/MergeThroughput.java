package dev.loraflow.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.kernels.Parallel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.LoraTarget;
import dev.loraflow.core.model.LoraTargets;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.merge.LoraMerge;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Merge time of a GPT-2-small-shaped model (random weights) with LoRA r=8 on every attention and MLP
 * module (c_attn, attn.c_proj, c_fc, mlp.c_proj of 12 layers: 85M of the 124M weights), against the
 * memory-bandwidth floor of copying the weights: cloning every float[], and cloning just the adapted
 * ones, which is all a merge has to touch. Medians of alternating rounds, in one JVM, so that all three
 * see the same machine load; {@code --files true} also times the whole directory merge (read the
 * safetensors file, merge, write it) against copying the file. Prints one JSON line.
 *
 * <p>{@code --rounds R --rank R --files true|false --dir DIR}; {@code -Dloraflow.threads=1} for one core.
 */
public final class MergeThroughput {

    private static final Gpt2Config GPT2_SMALL = new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5);

    private MergeThroughput() {}

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.MERGE_THROUGHPUT.run(args, MergeThroughput::measure);
    }

    private static void measure(BenchmarkCommandLine.Arguments options) throws Exception {
        int rounds = options.integer("--rounds");
        int rank = options.integer("--rank");

        ModelLayout layout = ModelLayout.of(GPT2_SMALL);
        Map<String, float[]> weights = RandomModel.initialWeights(GPT2_SMALL, 1);
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(rank).loraAlpha(2 * rank)
                .targetModules("c_attn", "c_proj", "c_fc").build();
        PeftAdapter adapter = randomAdapter(layout, lora);
        Set<String> adapted = LoraMerge.mergeWeights(layout, weights, adapter).entrySet().stream()
                .filter(entry -> entry.getValue() != weights.get(entry.getKey())).map(Map.Entry::getKey)
                .collect(java.util.stream.Collectors.toSet());
        long adaptedValues = adapted.stream().mapToLong(name -> weights.get(name).length).sum();
        long allValues = weights.values().stream().mapToLong(values -> values.length).sum();

        List<Double> copyAll = new ArrayList<>();
        List<Double> copyAdapted = new ArrayList<>();
        List<Double> merge = new ArrayList<>();
        long sink = 0;
        for (int round = 0; round < rounds + 1; round++) {
            long start = System.nanoTime();
            Map<String, float[]> copies = new LinkedHashMap<>();
            weights.forEach((name, values) -> copies.put(name, values.clone()));
            double all = (System.nanoTime() - start) / 1e9;
            sink += copies.size();

            start = System.nanoTime();
            Map<String, float[]> adaptedCopies = new LinkedHashMap<>();
            for (String name : adapted) {
                adaptedCopies.put(name, weights.get(name).clone());
            }
            double some = (System.nanoTime() - start) / 1e9;
            sink += adaptedCopies.size();

            start = System.nanoTime();
            Map<String, float[]> merged = LoraMerge.mergeWeights(layout, weights, adapter);
            double merging = (System.nanoTime() - start) / 1e9;
            sink += merged.size();
            if (round > 0) {  // the first round warms the JIT up
                copyAll.add(all);
                copyAdapted.add(some);
                merge.add(merging);
            }
        }

        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("model", "gpt2-small shape, random weights, LoRA r=" + rank + " on c_attn, c_proj, c_fc (all attention and MLP)");
        line.put("threads", Parallel.threads());
        line.put("weights", allValues);
        line.put("adapted_weights", adaptedValues);
        line.put("copy_all_s", median(copyAll));
        line.put("copy_adapted_s", median(copyAdapted));
        line.put("merge_s", median(merge));
        line.put("merge_over_copy_all", median(merge) / median(copyAll));
        line.put("merge_over_copy_adapted", median(merge) / median(copyAdapted));
        line.put("merge_gb_per_s", 2.0 * adaptedValues * Float.BYTES / median(merge) / 1e9);

        if (options.isSet("--files")) {
            Path dir = Files.createDirectories(Path.of(options.text("--dir")));
            Path base = dir.resolve("base");
            Path adapterDir = dir.resolve("adapter");
            FileTrees.delete(dir);
            RandomModel.write(GPT2_SMALL, 1, base);
            adapter.write(adapterDir, dev.loraflow.core.safetensors.DType.F32);
            List<Double> fileCopy = new ArrayList<>();
            List<Double> fileMerge = new ArrayList<>();
            for (int round = 0; round < 3; round++) {
                Path copy = dir.resolve("copy-" + round + ".safetensors");
                long start = System.nanoTime();
                Files.copy(base.resolve("model.safetensors"), copy);
                fileCopy.add((System.nanoTime() - start) / 1e9);
                Files.delete(copy);
                Path out = dir.resolve("merged-" + round);
                LoraMerge.Result result = LoraMerge.mergeDirectory(base, adapterDir, out, LoraMerge.Options.defaults());
                fileMerge.add(result.mergeNanos() / 1e9);
                FileTrees.delete(out);
            }
            line.put("file_copy_s", median(fileCopy));
            line.put("directory_merge_s", median(fileMerge));
            FileTrees.delete(dir);
        }
        line.put("checksum", sink);
        System.out.println(line);
    }

    private static PeftAdapter randomAdapter(ModelLayout layout, LoraAdapterConfig lora) {
        Rng rng = new Rng(7);
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (LoraTarget target : LoraTargets.select(layout, lora)) {
            float[] a = new float[target.rank() * target.in()];
            float[] b = new float[target.out() * target.rank()];
            for (int i = 0; i < a.length; i++) {
                a[i] = rng.nextUniform((float) (1 / Math.sqrt(target.in())));
            }
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.01f);
            }
            modules.put(target.modulePath(), new LoraWeights(target.modulePath(), target.rank(), target.in(), target.out(), a, b));
        }
        return new PeftAdapter(lora, modules);
    }

    private static double median(List<Double> values) {
        double[] sorted = values.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
