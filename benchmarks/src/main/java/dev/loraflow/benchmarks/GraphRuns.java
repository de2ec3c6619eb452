package dev.loraflow.benchmarks;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.inference.EngineSettings;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Runs of stateless graphs through ONNX Runtime, timed: the kernel half of "where an int4 token's time goes", with
 * bench/matmulnbits_only.py's graph of an export's 4-bit matmuls alone (one run = one decoded token's). Every
 * session (graph × thread count) is open at once and the rounds visit them in turn, so that a changing load falls on
 * all alike; the engine's session options, as {@link QuantizedDecode}.
 *
 * <p>Its options: {@link BenchmarkCommandLine#GRAPH_RUNS} ({@code --help}).
 */
public final class GraphRuns {

    private GraphRuns() {}

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.GRAPH_RUNS.run(args, GraphRuns::measure);
    }

    private static void measure(BenchmarkCommandLine.Arguments options) throws Exception {
        int[] threadCounts = QuantizedDecode.threadCounts(options);
        boolean spinning = options.isSet("--spinning");
        Map<String, String> sessionConfig = options.pairs("--session-config");
        int runs = options.integer("--runs");
        int rounds = options.integer("--rounds");
        boolean profile = options.isSet("--profile");
        List<Timed> timed = new ArrayList<>();
        try {
            for (String[] graph : QuantizedDecode.labelledGraphs(options)) {
                for (int threads : threadCounts) {
                    EngineSettings settings = OrtDecodeLoop.settings(threads, "cpu").withIntraOpSpinning(spinning);
                    Path profilePrefix = profile ? Files.createTempFile(QuantizedDecode.profilePrefixName(graph[0]), "") : null;
                    timed.add(new Timed(graph[0], threads, rounds, profilePrefix,
                            OrtDecodeLoop.createSession(Path.of(graph[1]), settings, profilePrefix, sessionConfig)));
                }
            }
            for (Timed each : timed) {
                each.run(1); // the first run allocates what later runs reuse
            }
            for (int round = 0; round < rounds; round++) {
                for (Timed each : timed) {
                    long cpu = QuantizedDecode.processCpuNanos();
                    long start = System.nanoTime();
                    each.run(runs);
                    each.msPerRun[round] = (System.nanoTime() - start) / 1e6 / runs;
                    each.cpuMsPerRun[round] = (QuantizedDecode.processCpuNanos() - cpu) / 1e6 / runs;
                }
            }
            ObjectMapper json = new ObjectMapper();
            for (Timed each : timed) {
                System.out.println(each.line(json, spinning, sessionConfig, runs, rounds));
            }
        } finally {
            for (Timed each : timed) {
                each.close();
            }
        }
    }

    /** One session and its fixed inputs: every float input of the graph, a dynamic dimension taken as 1. */
    private static final class Timed implements AutoCloseable {
        private final String label;
        private final int threads;
        private final double[] msPerRun;
        /** CPU time of the process per run, all its threads. */
        private final double[] cpuMsPerRun;
        private final Path profilePrefix;
        private final OrtSession session;
        private final Map<String, OnnxTensor> inputs = new HashMap<>();

        Timed(String label, int threads, int rounds, Path profilePrefix, OrtSession session) throws Exception {
            this.label = label;
            this.threads = threads;
            this.msPerRun = new double[rounds];
            this.cpuMsPerRun = new double[rounds];
            this.profilePrefix = profilePrefix;
            this.session = session;
            SplittableRandom random = new SplittableRandom(14);
            for (Map.Entry<String, NodeInfo> input : session.getInputInfo().entrySet()) {
                if (!(input.getValue().getInfo() instanceof TensorInfo info) || info.type != OnnxJavaType.FLOAT) {
                    throw new BenchmarkCommandLine.UsageException(label + ": input " + input.getKey()
                            + " is not a float tensor; GraphRuns feeds float inputs only");
                }
                long[] shape = Arrays.stream(info.getShape()).map(d -> d < 0 ? 1 : d).toArray();
                float[] values = new float[Math.toIntExact(Arrays.stream(shape).reduce(1, Math::multiplyExact))];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) random.nextGaussian();
                }
                inputs.put(input.getKey(), OnnxTensor.createTensor(OnnxRuntimeNatives.environment(),
                        FloatBuffer.wrap(values), shape));
            }
        }

        void run(int times) throws Exception {
            for (int i = 0; i < times; i++) {
                session.run(inputs).close();
            }
        }

        ObjectNode line(ObjectMapper json, boolean spinning, Map<String, String> sessionConfig, int runs, int rounds)
                throws Exception {
            ObjectNode line = json.createObjectNode();
            line.put("engine", "onnxruntime");
            line.put("graph", label);
            line.put("threads", threads);
            line.put("spinning", spinning);
            if (!sessionConfig.isEmpty()) {
                line.putPOJO("session_config", sessionConfig);
            }
            line.put("runs_per_round", runs);
            line.put("ms_per_run", QuantizedDecode.median(msPerRun));
            line.putPOJO("rounds_ms_per_run", msPerRun);
            line.put("cpu_ms_per_run", QuantizedDecode.median(cpuMsPerRun));
            if (profilePrefix != null) {
                line.putPOJO("profile_ms_per_run_by_op",
                        OrtDecodeLoop.perRun(OrtDecodeLoop.endProfiling(session), 1 + rounds * runs));
            }
            return line;
        }

        @Override
        public void close() throws Exception {
            inputs.values().forEach(OnnxTensor::close);
            session.close();
            if (profilePrefix != null) {
                Files.deleteIfExists(profilePrefix);
            }
        }
    }
}
