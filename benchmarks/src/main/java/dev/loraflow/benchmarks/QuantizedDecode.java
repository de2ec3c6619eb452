package dev.loraflow.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.onnx.GraphNames;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Batch-1 greedy decoding of exported graphs through ONNX Runtime, timed as node-llama-cpp's anchor times
 * llama.cpp (bench/run-quantized.sh runs both on the same weights): prefill of the prompt, then one run per
 * token with present.* fed back as past_key_values.*, the arg-max of the logits row; tokens/s over tokens
 * 2..N, the median of the rounds. Prints one JSON line per graph.
 *
 * <p>usage: QuantizedDecode --config config.json --threads 2 --tokens 256 --rounds 3 LABEL=FILE.onnx ...
 */
public final class QuantizedDecode {

    private QuantizedDecode() {}

    public static void main(String[] args) throws Exception {
        Path configFile = null;
        int threads = 2;
        int tokens = 256;
        int rounds = 3;
        List<String[]> graphs = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--config" -> configFile = Path.of(args[++i]);
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--tokens" -> tokens = Integer.parseInt(args[++i]);
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                default -> {
                    String[] graph = args[i].split("=", 2);
                    if (graph.length != 2) {
                        throw new IllegalArgumentException("expected LABEL=FILE.onnx, got " + args[i]);
                    }
                    graphs.add(graph);
                }
            }
        }
        if (configFile == null || graphs.isEmpty()) {
            throw new IllegalArgumentException("usage: QuantizedDecode --config config.json [--threads 2] [--tokens 256]"
                    + " [--rounds 3] LABEL=FILE.onnx ...");
        }
        ModelConfig config = ModelConfig.read(configFile);
        int[] prompt = new int[16];
        Arrays.setAll(prompt, i -> i + 1); // the anchor's default prompt: ids 1..16
        ObjectMapper json = new ObjectMapper();
        int[] reference = null;
        for (String[] graph : graphs) {
            try (Loop loop = new Loop(Path.of(graph[1]), config, threads)) {
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
                line.put("graph", graph[0]);
                line.put("threads", threads);
                line.put("n", tokens);
                line.put("decode_tokens_per_s", sorted[rounds / 2]);
                line.putPOJO("rounds_tokens_per_s", tokensPerSecond);
                line.put("greedy_prefix_equal_to_first", same);
                System.out.println(line);
            }
        }
    }

    /** One session, the engine's options (all optimisations, {@code threads} intra-op threads). */
    private static final class Loop implements AutoCloseable {
        private final OrtEnvironment env = OrtEnvironment.getEnvironment();
        private final OrtSession session;
        private final ModelConfig config;
        private final int kvHeads;

        Loop(Path model, ModelConfig config, int threads) throws OrtException {
            this.config = config;
            this.kvHeads = switch (config) {
                case Gpt2Config gpt2 -> gpt2.numHeads();
                case DecoderConfig decoder -> decoder.numKeyValueHeads();
            };
            try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
                options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
                options.setIntraOpNumThreads(threads);
                this.session = env.createSession(model.toString(), options);
            }
        }

        /** {@code count} tokens; stamps[t] is when token t was chosen. */
        int[] generate(int[] prompt, int count, long[] stamps) throws OrtException {
            int[] generated = new int[count];
            Map<String, OnnxTensor> emptyPast = new HashMap<>();
            long[] pastShape = {1, kvHeads, 0, config.headDim()};
            OrtSession.Result result = null;
            try {
                for (int layer = 0; layer < config.numLayers(); layer++) {
                    emptyPast.put(GraphNames.pastKey(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape));
                    emptyPast.put(GraphNames.pastValue(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape));
                }
                result = step(Arrays.stream(prompt).asLongStream().toArray(), 0, emptyPast);
                generated[0] = argmaxLast(result);
                stamps[0] = System.nanoTime();
                for (int t = 1; t < count; t++) {
                    Map<String, OnnxTensor> past = new HashMap<>();
                    for (int layer = 0; layer < config.numLayers(); layer++) {
                        past.put(GraphNames.pastKey(layer), tensor(result, GraphNames.presentKey(layer)));
                        past.put(GraphNames.pastValue(layer), tensor(result, GraphNames.presentValue(layer)));
                    }
                    OrtSession.Result next = step(new long[] {generated[t - 1]}, prompt.length + t - 1, past);
                    result.close();
                    result = next;
                    generated[t] = argmaxLast(result);
                    stamps[t] = System.nanoTime();
                }
                return generated;
            } finally {
                if (result != null) {
                    result.close();
                }
                emptyPast.values().forEach(OnnxTensor::close);
            }
        }

        private OrtSession.Result step(long[] ids, int past, Map<String, OnnxTensor> pastTensors) throws OrtException {
            int total = past + ids.length;
            long[] mask = new long[total];
            Arrays.fill(mask, 1);
            long[] positions = new long[ids.length];
            Arrays.setAll(positions, i -> past + i);
            Map<String, OnnxTensor> inputs = new HashMap<>(pastTensors);
            try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {1, ids.length});
                 OnnxTensor attentionMask = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {1, total});
                 OnnxTensor positionIds = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {1, ids.length})) {
                inputs.put(GraphNames.INPUT_IDS, inputIds);
                inputs.put(GraphNames.ATTENTION_MASK, attentionMask);
                inputs.put(GraphNames.POSITION_IDS, positionIds);
                return session.run(inputs);
            }
        }

        private static OnnxTensor tensor(OrtSession.Result result, String name) {
            return (OnnxTensor) result.get(name).orElseThrow();
        }

        private int argmaxLast(OrtSession.Result result) {
            FloatBuffer logits = tensor(result, GraphNames.LOGITS).getFloatBuffer();
            int vocab = config.vocabSize();
            int last = logits.limit() - vocab;
            int best = 0;
            for (int v = 1; v < vocab; v++) {
                if (logits.get(last + v) > logits.get(last + best)) {
                    best = v;
                }
            }
            return best;
        }

        @Override
        public void close() throws OrtException {
            session.close();
        }
    }
}
