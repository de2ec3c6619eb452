package dev.loraflow.benchmarks;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.LoraInputs;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import dev.loraflow.onnx.OnnxVerifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.stream.Stream;

/**
 * ONNX export of a GPT-2-small-shaped model (random weights, LoRA r=8 on c_attn): export time, ONNX
 * Runtime session-creation time, and ORT prefill and KV-cached decode speed of the merged-LoRA graph
 * against the same model exported without LoRA (the two must run equally fast: a merged adapter costs
 * nothing) and of the un-merged graph fed the adapter. Greedy decoding of one sequence, wall-clock,
 * medians of alternating rounds so that both graphs see the same machine load. Prints one JSON line.
 *
 * <p>{@code --prompt P --decode N --rounds R --threads T --dir DIR}
 */
public final class OnnxExportThroughput {

    private static final Gpt2Config GPT2_SMALL = new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5);

    private OnnxExportThroughput() {}

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.ONNX_EXPORT_THROUGHPUT.run(args, OnnxExportThroughput::measure);
    }

    private static void measure(BenchmarkCommandLine.Arguments options) throws Exception {
        int prompt = options.integer("--prompt");
        int decode = options.integer("--decode");
        int rounds = options.integer("--rounds");
        int threads = options.integer("--threads");
        Path dir = Files.createDirectories(Path.of(options.text("--dir")));

        Map<String, float[]> weights = RandomModel.initialWeights(GPT2_SMALL, 1);
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(8).loraAlpha(16).targetModules("c_attn").build();
        CausalLanguageModel adapted = CausalLanguageModel.create(GPT2_SMALL, weights, lora, 2);
        Rng rng = new Rng(3);
        for (LoRALinear module : adapted.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.05f);
            }
        }
        CausalLanguageModel base = CausalLanguageModel.create(GPT2_SMALL, weights, null, 0);
        Provenance provenance = new Provenance(null, null, null);

        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("model", "gpt2-small shape, random weights, LoRA r=8 on c_attn");
        Path merged = dir.resolve("merged.onnx");
        Path plain = dir.resolve("base.onnx");
        Path unmerged = dir.resolve("unmerged.onnx");
        line.put("export_merged_s", OnnxExporter.export(adapted, weights, Options.defaults(), provenance, merged).exportNanos() / 1e9);
        line.put("export_base_s", OnnxExporter.export(base, weights, Options.defaults(), provenance, plain).exportNanos() / 1e9);
        line.put("export_unmerged_s", OnnxExporter.export(adapted, weights, Options.defaults().withUnmerged(true),
                provenance, unmerged).exportNanos() / 1e9);
        line.put("file_mb", Files.size(merged) / 1e6);

        OrtEnvironment env = OnnxRuntimeNatives.environment();
        try (OrtSession.SessionOptions sessionOptions = new OrtSession.SessionOptions()) {
            sessionOptions.setIntraOpNumThreads(threads);
            long start = System.nanoTime();
            OrtSession mergedSession = env.createSession(merged.toString(), sessionOptions);
            line.put("session_create_merged_s", (System.nanoTime() - start) / 1e9);
            start = System.nanoTime();
            OrtSession baseSession = env.createSession(plain.toString(), sessionOptions);
            line.put("session_create_base_s", (System.nanoTime() - start) / 1e9);
            start = System.nanoTime();
            OrtSession unmergedSession = env.createSession(unmerged.toString(), sessionOptions);
            line.put("session_create_unmerged_s", (System.nanoTime() - start) / 1e9);
            Map<String, FloatTensor> adapter = LoraInputs.withDefaults(unmergedSession.getInputInfo(),
                    LoraInputs.of(adapted.toPeftAdapter()));
            try (OrtDecodeLoop mergedLoop = new OrtDecodeLoop(mergedSession, GPT2_SMALL, Map.of());
                 OrtDecodeLoop baseLoop = new OrtDecodeLoop(baseSession, GPT2_SMALL, Map.of());
                 OrtDecodeLoop unmergedLoop = new OrtDecodeLoop(unmergedSession, GPT2_SMALL, adapter)) {
                OnnxVerifier.Result verified = OnnxVerifier.verify(mergedSession, adapted, OnnxVerifier.Probe.standard(),
                        Map.of(), OnnxVerifier.DEFAULT_TOLERANCE);
                line.put("verify_merged", verified.summary());

                Rng tokens = new Rng(4);
                int[] ids = new int[prompt];
                Arrays.setAll(ids, t -> (int) Math.floorMod(tokens.nextLong(), GPT2_SMALL.vocabSize()));
                double[][] mergedTimes = new double[2][rounds];
                double[][] baseTimes = new double[2][rounds];
                double[][] unmergedTimes = new double[2][rounds];
                generate(mergedLoop, ids, decode);
                generate(baseLoop, ids, decode);
                generate(unmergedLoop, ids, decode);
                for (int round = 0; round < rounds; round++) {
                    record(mergedTimes, round, generate(mergedLoop, ids, decode));
                    record(baseTimes, round, generate(baseLoop, ids, decode));
                    record(unmergedTimes, round, generate(unmergedLoop, ids, decode));
                }
                line.put("prompt", prompt);
                line.put("decode_tokens", decode);
                line.put("threads", threads);
                line.put("prefill_ms_merged", median(mergedTimes[0]));
                line.put("prefill_ms_base", median(baseTimes[0]));
                line.put("prefill_ms_unmerged", median(unmergedTimes[0]));
                line.put("decode_ms_per_token_merged", median(mergedTimes[1]) / decode);
                line.put("decode_ms_per_token_base", median(baseTimes[1]) / decode);
                line.put("decode_ms_per_token_unmerged", median(unmergedTimes[1]) / decode);
            }
        }
        System.out.println(line);
        try (Stream<Path> files = Files.list(dir)) {
            for (Path file : files.toList()) {
                Files.delete(file);
            }
        }
    }

    private static void record(double[][] times, int round, double[] measured) {
        times[0][round] = measured[0];
        times[1][round] = measured[1];
    }

    /** Prefill of {@code ids}, then {@code steps} greedy tokens through the KV cache: {prefill ms, decode ms}. */
    private static double[] generate(OrtDecodeLoop loop, int[] ids, int steps) throws OrtException {
        long[] stamps = new long[steps + 1];
        long start = System.nanoTime();
        loop.generate(ids, steps + 1, stamps);
        return new double[] {(stamps[0] - start) / 1e6, (stamps[steps] - stamps[0]) / 1e6};
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted.length % 2 == 1 ? sorted[sorted.length / 2]
                : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    }
}
