package dev.loraflow.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.inference.EngineSettings;
import java.lang.management.ManagementFactory;
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
 * tokens/s over tokens 2..N, the median of the rounds. Prints one JSON line per graph and thread count (the engine's
 * default session options: ONNX Runtime's threads do not spin, unless --spinning; --session-config adds configuration
 * entries), with the process's CPU time per decode step beside the wall time (a generation of N tokens less one of
 * 2, over N − 2 steps: what a loaded machine's time slicing does not inflate); with --interleave all the graphs' sessions
 * open at once and their rounds taken in turn; with --profile also ONNX Runtime's kernel time per token by operator
 * type over all the rounds (prefill included), which slows the loop itself.
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
        int[] threadCounts = threadCounts(options);
        boolean spinning = options.isSet("--spinning");
        Map<String, String> sessionConfig = options.pairs("--session-config");
        int tokens = options.integer("--tokens");
        int rounds = options.integer("--rounds");
        boolean profile = options.isSet("--profile");
        List<String[]> graphs = labelledGraphs(options);
        ModelConfig config = ModelConfig.read(configFile);
        int[] prompt = new int[16];
        Arrays.setAll(prompt, i -> i + 1); // the anchor's default prompt: ids 1..16
        List<Measurement> measurements = new ArrayList<>();
        for (String[] graph : graphs) {
            for (int threads : threadCounts) {
                EngineSettings settings = OrtDecodeLoop.settings(threads, "cpu").withIntraOpSpinning(spinning);
                measurements.add(new Measurement(graph[0], Path.of(graph[1]), settings, sessionConfig, rounds));
            }
        }
        ObjectMapper json = new ObjectMapper();
        if (options.isSet("--interleave")) {
            List<OrtDecodeLoop> loops = new ArrayList<>();
            try {
                for (Measurement measurement : measurements) {
                    loops.add(measurement.open(config, profile));
                }
                for (int round = 0; round < rounds; round++) {
                    for (int i = 0; i < measurements.size(); i++) {
                        measurements.get(i).round(loops.get(i), round, prompt, tokens);
                    }
                }
                for (int i = 0; i < measurements.size(); i++) {
                    System.out.println(measurements.get(i).line(loops.get(i), profile, tokens, json));
                }
            } finally {
                for (OrtDecodeLoop loop : loops) {
                    loop.close();
                }
            }
        } else {
            for (Measurement measurement : measurements) {
                try (OrtDecodeLoop loop = measurement.open(config, profile)) {
                    for (int round = 0; round < rounds; round++) {
                        measurement.round(loop, round, prompt, tokens);
                    }
                    System.out.println(measurement.line(loop, profile, tokens, json));
                }
            }
        }
    }

    static int[] threadCounts(BenchmarkCommandLine.Arguments options) {
        try {
            return Arrays.stream(options.text("--threads").split(",")).mapToInt(Integer::parseInt).toArray();
        } catch (NumberFormatException notCounts) {
            throw new BenchmarkCommandLine.UsageException("--threads needs comma-separated counts, got '"
                    + options.text("--threads") + "'");
        }
    }

    /** The operands as {LABEL, FILE}. */
    static List<String[]> labelledGraphs(BenchmarkCommandLine.Arguments options) {
        List<String[]> graphs = new ArrayList<>();
        for (String operand : options.operands()) {
            String[] graph = operand.split("=", 2);
            if (graph.length != 2) {
                throw new BenchmarkCommandLine.UsageException("expected LABEL=FILE.onnx, got '" + operand + "'");
            }
            graphs.add(graph);
        }
        return graphs;
    }

    /** One graph at one setting: its rounds' figures; the first graph decoded gives the reference tokens. */
    private static final class Measurement {
        private final String label;
        private final Path graph;
        private final EngineSettings settings;
        private final Map<String, String> sessionConfig;
        private final double[] tokensPerSecond;
        /** CPU time of the process per decode step: a generation of N tokens less one of 2, over N − 2 steps. */
        private final double[] cpuMsPerToken;
        private Path profilePrefix;
        private int[] ids;

        Measurement(String label, Path graph, EngineSettings settings, Map<String, String> sessionConfig, int rounds) {
            this.label = label;
            this.graph = graph;
            this.settings = settings;
            this.sessionConfig = sessionConfig;
            this.tokensPerSecond = new double[rounds];
            this.cpuMsPerToken = new double[rounds];
        }

        OrtDecodeLoop open(ModelConfig config, boolean profile) throws Exception {
            profilePrefix = profile ? Files.createTempFile(profilePrefixName(label), "") : null;
            return new OrtDecodeLoop(OrtDecodeLoop.createSession(graph, settings, profilePrefix, sessionConfig), config,
                    Map.of());
        }

        void round(OrtDecodeLoop loop, int round, int[] prompt, int tokens) throws Exception {
            long start = processCpuNanos();
            loop.generate(prompt, 2, new long[2]);
            long prefillAndOneStep = processCpuNanos() - start;
            long[] stamps = new long[tokens];
            start = processCpuNanos();
            ids = loop.generate(prompt, tokens, stamps);
            cpuMsPerToken[round] = (processCpuNanos() - start - prefillAndOneStep) / 1e6 / (tokens - 2);
            tokensPerSecond[round] = (tokens - 1) / ((stamps[tokens - 1] - stamps[0]) / 1e9);
            if (reference == null) {
                reference = ids;
            }
        }

        ObjectNode line(OrtDecodeLoop loop, boolean profile, int tokens, ObjectMapper json) throws Exception {
            int same = 0;
            while (same < tokens && ids[same] == reference[same]) {
                same++;
            }
            ObjectNode line = json.createObjectNode();
            line.put("engine", "onnxruntime");
            line.put("graph", label);
            line.put("threads", settings.intraOpThreads());
            line.put("spinning", settings.intraOpSpinning());
            if (!sessionConfig.isEmpty()) {
                line.putPOJO("session_config", sessionConfig);
            }
            line.put("n", tokens);
            line.put("decode_tokens_per_s", median(tokensPerSecond));
            line.putPOJO("rounds_tokens_per_s", tokensPerSecond);
            line.put("cpu_ms_per_token", median(cpuMsPerToken));
            line.put("greedy_prefix_equal_to_first", same);
            if (profile) {
                try {
                    line.putPOJO("profile_ms_per_token_by_op",
                            OrtDecodeLoop.perRun(loop.endProfiling(), tokensPerSecond.length * tokens));
                } finally {
                    Files.deleteIfExists(profilePrefix);
                }
            }
            return line;
        }
    }

    /** CPU time of this process, all its threads (ONNX Runtime's pool included), in nanoseconds. */
    static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /** A temporary file's prefix for a graph's ORT profile: the label's characters a file name cannot hold ("/") as "_". */
    static String profilePrefixName(String label) {
        return "ort-profile-" + label.replaceAll("[^A-Za-z0-9+._-]", "_");
    }
}
