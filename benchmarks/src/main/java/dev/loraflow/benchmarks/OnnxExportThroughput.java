package dev.loraflow.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
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
import dev.loraflow.onnx.GraphNames;
import dev.loraflow.onnx.LoraInputs;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import dev.loraflow.onnx.OnnxVerifier;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
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
        Map<String, String> options = new LinkedHashMap<>(Map.of("--prompt", "128", "--decode", "32", "--rounds", "5",
                "--threads", "2", "--dir", System.getProperty("java.io.tmpdir") + "/loraflow-onnx-bench"));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!options.containsKey(args[i])) {
                throw new IllegalArgumentException("unknown option " + args[i] + "; known: " + options.keySet());
            }
            options.put(args[i], args[i + 1]);
        }
        int prompt = Integer.parseInt(options.get("--prompt"));
        int decode = Integer.parseInt(options.get("--decode"));
        int rounds = Integer.parseInt(options.get("--rounds"));
        int threads = Integer.parseInt(options.get("--threads"));
        Path dir = Files.createDirectories(Path.of(options.get("--dir")));

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

        OrtEnvironment env = OrtEnvironment.getEnvironment();
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
            try (mergedSession; baseSession; unmergedSession) {
                OnnxVerifier.Result verified = OnnxVerifier.verify(mergedSession, adapted, OnnxVerifier.Probe.standard(),
                        Map.of(), OnnxVerifier.DEFAULT_TOLERANCE);
                line.put("verify_merged", verified.summary());

                Map<String, FloatTensor> adapter = LoraInputs.withDefaults(unmergedSession.getInputInfo(),
                        LoraInputs.of(adapted.toPeftAdapter()));
                Rng tokens = new Rng(4);
                int[] ids = new int[prompt];
                Arrays.setAll(ids, t -> (int) Math.floorMod(tokens.nextLong(), GPT2_SMALL.vocabSize()));
                double[][] mergedTimes = new double[2][rounds];
                double[][] baseTimes = new double[2][rounds];
                double[][] unmergedTimes = new double[2][rounds];
                generate(env, mergedSession, ids, decode, Map.of());
                generate(env, baseSession, ids, decode, Map.of());
                generate(env, unmergedSession, ids, decode, adapter);
                for (int round = 0; round < rounds; round++) {
                    record(mergedTimes, round, generate(env, mergedSession, ids, decode, Map.of()));
                    record(baseTimes, round, generate(env, baseSession, ids, decode, Map.of()));
                    record(unmergedTimes, round, generate(env, unmergedSession, ids, decode, adapter));
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
    private static double[] generate(OrtEnvironment env, OrtSession session, int[] ids, int steps,
                                     Map<String, FloatTensor> extra) throws OrtException {
        int layers = GPT2_SMALL.numLayers();
        Map<String, OnnxTensor> owned = new HashMap<>();
        for (var input : extra.entrySet()) {
            owned.put(input.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(input.getValue().values()),
                    input.getValue().shape()));
        }
        long[] pastShape = {1, GPT2_SMALL.numHeads(), 0, GPT2_SMALL.headDim()};
        for (int layer = 0; layer < layers; layer++) {
            owned.put(GraphNames.pastKey(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape));
            owned.put(GraphNames.pastValue(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape));
        }
        OrtSession.Result result = null;
        try {
            long[] tokens = Arrays.stream(ids).asLongStream().toArray();
            long start = System.nanoTime();
            result = step(env, session, tokens, 0, owned, null);
            double prefill = (System.nanoTime() - start) / 1e6;
            start = System.nanoTime();
            for (int s = 0; s < steps; s++) {
                long next = argmaxLast(result);
                OrtSession.Result following = step(env, session, new long[] {next}, ids.length + s, owned, result);
                result.close();
                result = following;
            }
            return new double[] {prefill, (System.nanoTime() - start) / 1e6};
        } finally {
            if (result != null) {
                result.close();
            }
            owned.values().forEach(OnnxTensor::close);
        }
    }

    private static OrtSession.Result step(OrtEnvironment env, OrtSession session, long[] tokens, int past,
                                          Map<String, OnnxTensor> owned, OrtSession.Result previous) throws OrtException {
        int total = past + tokens.length;
        long[] mask = new long[total];
        Arrays.fill(mask, 1);
        long[] positions = new long[tokens.length];
        Arrays.setAll(positions, i -> past + i);
        Map<String, OnnxTensor> inputs = new HashMap<>();
        for (var input : owned.entrySet()) {
            if (previous == null || !input.getKey().startsWith("past_key_values.")) {
                inputs.put(input.getKey(), input.getValue());
            }
        }
        if (previous != null) {
            for (int layer = 0; layer < GPT2_SMALL.numLayers(); layer++) {
                inputs.put(GraphNames.pastKey(layer), tensor(previous, GraphNames.presentKey(layer)));
                inputs.put(GraphNames.pastValue(layer), tensor(previous, GraphNames.presentValue(layer)));
            }
        }
        try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(tokens), new long[] {1, tokens.length});
             OnnxTensor attentionMask = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {1, total});
             OnnxTensor positionIds = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {1, tokens.length})) {
            inputs.put(GraphNames.INPUT_IDS, inputIds);
            inputs.put(GraphNames.ATTENTION_MASK, attentionMask);
            inputs.put(GraphNames.POSITION_IDS, positionIds);
            return session.run(inputs);
        }
    }

    private static OnnxTensor tensor(OrtSession.Result result, String name) {
        OnnxValue value = result.get(name).orElseThrow();
        return (OnnxTensor) value;
    }

    private static long argmaxLast(OrtSession.Result result) {
        FloatBuffer logits = tensor(result, GraphNames.LOGITS).getFloatBuffer();
        int vocab = GPT2_SMALL.vocabSize();
        int last = logits.limit() - vocab;
        int best = 0;
        for (int v = 1; v < vocab; v++) {
            if (logits.get(last + v) > logits.get(last + best)) {
                best = v;
            }
        }
        return best;
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted.length % 2 == 1 ? sorted[sorted.length / 2]
                : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    }
}
