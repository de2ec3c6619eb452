package dev.loraflow.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.inference.EngineSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Batch-1 greedy decoding of exported graphs through ONNX Runtime, timed as node-llama-cpp's anchor times
 * llama.cpp (bench/run-quantized.sh runs both on the same weights): prefill of the prompt, then one run per
 * token writing its keys and values into the past_key_values.* buffers in place, the arg-max of the logits row;
 * tokens/s over tokens 2..N, the median of the rounds. Prints one JSON line per graph and thread count (the engine's default
 * session options: ONNX Runtime's threads do not spin, unless --spinning); with --profile also ONNX Runtime's kernel time
 * per token by operator type over all the rounds (prefill included), which slows the loop itself.
 *
 * <p>Its options: {@link BenchmarkCommandLine#QUANTIZED_DECODE} ({@code --help}).
 */
public final class QuantizedDecode {

    /** The greedy tokens of the first graph decoded, which the others are compared with. */
    private static int[] reference;

    private QuantizedDecode() {}

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.QUANTIZED_DECODE.run(args, QuantizedDecode::measure);
    }

    private static void measure(BenchmarkCommandLine.Arguments options) throws Exception {
        Path configFile = Path.of(options.text("--config"));
        int[] threadCounts;
        try {
            threadCounts = Arrays.stream(options.text("--threads").split(",")).mapToInt(Integer::parseInt).toArray();
        } catch (NumberFormatException notCounts) {
            throw new BenchmarkCommandLine.UsageException("--threads needs comma-separated counts, got '"
                    + options.text("--threads") + "'");
        }
        boolean spinning = options.isSet("--spinning");
        int tokens = options.integer("--tokens");
        int rounds = options.integer("--rounds");
        boolean profile = options.isSet("--profile");
        List<String[]> graphs = new ArrayList<>();
        for (String operand : options.operands()) {
            String[] graph = operand.split("=", 2);
            if (graph.length != 2) {
                throw new BenchmarkCommandLine.UsageException("expected LABEL=FILE.onnx, got '" + operand + "'");
            }
            graphs.add(graph);
        }
        ModelConfig config = ModelConfig.read(configFile);
        int[] prompt = new int[16];
        Arrays.setAll(prompt, i -> i + 1); // the anchor's default prompt: ids 1..16
        ObjectMapper json = new ObjectMapper();
        for (String[] graph : graphs) {
            for (int threads : threadCounts) {
                System.out.println(decode(graph[0], Path.of(graph[1]), config,
                        OrtDecodeLoop.settings(threads, "cpu").withIntraOpSpinning(spinning), prompt, tokens, rounds,
                        profile, json));
            }
        }
    }

    /** One graph at one setting: its JSON line; the first graph decoded gives the reference tokens. */
    private static ObjectNode decode(String label, Path graph, ModelConfig config, EngineSettings settings, int[] prompt,
                                     int tokens, int rounds, boolean profile, ObjectMapper json) throws Exception {
        Path profilePrefix = profile ? Files.createTempFile("ort-profile-" + label, "") : null;
        try (OrtDecodeLoop loop = new OrtDecodeLoop(graph, config, settings, profilePrefix)) {
            double[] tokensPerSecond = new double[rounds];
            int[] ids = null;
            for (int round = 0; round < rounds; round++) {
                long[] stamps = new long[tokens];
                ids = loop.generate(prompt, tokens, stamps);
                tokensPerSecond[round] = (tokens - 1) / ((stamps[tokens - 1] - stamps[0]) / 1e9);
            }
            if (reference == null) {
                reference = ids;
            }
            int same = 0;
            while (same < tokens && ids[same] == reference[same]) {
                same++;
            }
            double[] sorted = tokensPerSecond.clone();
            Arrays.sort(sorted);
            ObjectNode line = json.createObjectNode();
            line.put("engine", "onnxruntime");
            line.put("graph", label);
            line.put("threads", settings.intraOpThreads());
            line.put("spinning", settings.intraOpSpinning());
            line.put("n", tokens);
            line.put("decode_tokens_per_s", sorted[rounds / 2]);
            line.putPOJO("rounds_tokens_per_s", tokensPerSecond);
            line.put("greedy_prefix_equal_to_first", same);
            if (profile) {
                line.putPOJO("profile_ms_per_token_by_op", OrtDecodeLoop.perRun(loop.endProfiling(), rounds * tokens));
            }
            return line;
        } finally {
            if (profilePrefix != null) {
                Files.deleteIfExists(profilePrefix);
            }
        }
    }
}
