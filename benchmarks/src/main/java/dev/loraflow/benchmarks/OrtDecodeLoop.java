package dev.loraflow.benchmarks;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.inference.EngineSettings;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.GraphNames;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Batch-1 greedy generation through ONNX Runtime directly, without the engine (by default with the session
 * options the engine uses, {@link EngineSettings#configure}): prefill of the prompt, then one run per token
 * with present.* fed back as past_key_values.*, the arg-max of the last logits row. The reference the
 * benchmarks time the server, llama.cpp and the merged-against-base exports against (ServingLoad,
 * QuantizedDecode, OnnxExportThroughput).
 */
final class OrtDecodeLoop implements AutoCloseable {
    /** {@link #endProfiling}'s key for the session runs' whole time, kernels and what lies between them. */
    static final String WHOLE_RUN = "(whole run)";

    private final OrtEnvironment env = OnnxRuntimeNatives.environment();
    private final OrtSession session;
    private final ModelConfig config;
    private final int kvHeads;
    /** Inputs fed at every step besides the ids, mask, positions and past (an un-merged graph's LoRA inputs). */
    private final Map<String, FloatTensor> extraInputs;

    /**
     * @param settings the engine's session settings (threads, spinning, provider)
     * @param profile  where ONNX Runtime writes its profile (a prefix; {@link #endProfiling} says the file), or null
     */
    OrtDecodeLoop(Path model, ModelConfig config, EngineSettings settings, Path profile) throws OrtException {
        this(createSession(model, settings, profile, Map.of()), config, Map.of());
    }

    /** A loop over a session already open (closed with the loop), feeding {@code extraInputs} at every step. */
    OrtDecodeLoop(OrtSession session, ModelConfig config, Map<String, FloatTensor> extraInputs) {
        this.session = session;
        this.config = config;
        this.extraInputs = extraInputs;
        this.kvHeads = switch (config) {
            case Gpt2Config gpt2 -> gpt2.numHeads();
            case DecoderConfig decoder -> decoder.numKeyValueHeads();
        };
    }

    /**
     * A session of {@code model} with the engine's {@code settings}, then ONNX Runtime's session configuration
     * {@code entries} (onnxruntime_session_options_config_keys.h; the benchmarks' levers beyond the engine's settings),
     * profiled into {@code profile} unless null.
     */
    static OrtSession createSession(Path model, EngineSettings settings, Path profile, Map<String, String> entries)
            throws OrtException {
        OrtEnvironment env = OnnxRuntimeNatives.environment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            if (!settings.configure(options).startsWith(settings.provider().name().toLowerCase(Locale.ROOT))) {
                throw new IllegalStateException("--device cuda, but ONNX Runtime has no CUDA provider here:"
                        + " build with -Pcuda (bench/gpu-check.sh does)");
            }
            for (Map.Entry<String, String> entry : entries.entrySet()) {
                options.addConfigEntry(entry.getKey(), entry.getValue());
            }
            if (profile != null) {
                options.enableProfiling(profile.toString());
            }
            return env.createSession(model.toString(), options);
        }
    }

    /** The engine's default settings with {@code threads} intra-op threads on {@code device}, "cpu" or "cuda". */
    static EngineSettings settings(int threads, String device) {
        EngineSettings settings = EngineSettings.defaults().withIntraOpThreads(threads);
        return new EngineSettings(EngineSettings.Provider.parse(device), 0, settings.optimizationLevel(), threads,
                settings.interOpThreads(), settings.memoryArena(), settings.maxBatchSize(), settings.queueCapacity());
    }

    /** Prefill, then one step per further token: {@code count} tokens; stamps[t] is when token t was chosen. */
    int[] generate(int[] prompt, int count, long[] stamps) throws OrtException {
        return generate(new int[][] {prompt}, count, stamps)[0];
    }

    /**
     * As {@link #generate(int[], int, long[])} for a batch of prompts of one length, one row each, decoded together
     * (batch n: every run has n rows, no padding); one row of tokens per prompt.
     */
    int[][] generate(int[][] prompts, int count, long[] stamps) throws OrtException {
        int n = prompts.length;
        int length = prompts[0].length;
        long[] ids = new long[n * length];
        for (int b = 0; b < n; b++) {
            if (prompts[b].length != length) {
                throw new IllegalArgumentException("the prompts of a batch must have one length");
            }
            for (int i = 0; i < length; i++) {
                ids[b * length + i] = prompts[b][i];
            }
        }
        int[][] generated = new int[n][count];
        Map<String, OnnxTensor> prefillInputs = prefillInputs(n);
        OrtSession.Result result = null;
        try {
            result = step(ids, n, 0, prefillInputs);
            argmaxLast(result, n, generated, 0);
            stamps[0] = System.nanoTime();
            long[] next = new long[n];
            for (int t = 1; t < count; t++) {
                Map<String, OnnxTensor> past = new HashMap<>(prefillInputs);
                for (int layer = 0; layer < config.numLayers(); layer++) {
                    past.put(GraphNames.pastKey(layer), tensor(result, GraphNames.presentKey(layer)));
                    past.put(GraphNames.pastValue(layer), tensor(result, GraphNames.presentValue(layer)));
                }
                for (int b = 0; b < n; b++) {
                    next[b] = generated[b][t - 1];
                }
                OrtSession.Result stepResult = step(next, n, length + t - 1, past);
                result.close();
                result = stepResult;
                argmaxLast(result, n, generated, t);
                stamps[t] = System.nanoTime();
            }
            return generated;
        } finally {
            if (result != null) {
                result.close();
            }
            prefillInputs.values().forEach(OnnxTensor::close);
        }
    }

    /** Every step runs the whole sequence so far with an empty past. */
    int[] generateWithoutCache(int[] prompt, int count) throws OrtException {
        long[] sequence = new long[prompt.length + count];
        for (int i = 0; i < prompt.length; i++) {
            sequence[i] = prompt[i];
        }
        Map<String, OnnxTensor> prefillInputs = prefillInputs(1);
        int[][] generated = new int[1][count];
        try {
            for (int t = 0; t < count; t++) {
                try (OrtSession.Result result = step(Arrays.copyOf(sequence, prompt.length + t), 1, 0, prefillInputs)) {
                    argmaxLast(result, 1, generated, t);
                }
                sequence[prompt.length + t] = generated[0][t];
            }
            return generated[0];
        } finally {
            prefillInputs.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * Ends ONNX Runtime's profiling (the loop must have been built with a profile) and sums its node events:
     * microseconds per operator type, as the optimised graph ran them (fused nodes under their fused type), and
     * the session runs' whole time under {@value #WHOLE_RUN}.
     */
    Map<String, Long> endProfiling() throws OrtException, IOException {
        return endProfiling(session);
    }

    /** {@link #endProfiling()} of any session built with a profile. */
    static Map<String, Long> endProfiling(OrtSession session) throws OrtException, IOException {
        Path trace = Path.of(session.endProfiling());
        Map<String, Long> microsByOp = new TreeMap<>();
        try {
            for (JsonNode event : new ObjectMapper().readTree(trace.toFile())) {
                String category = event.path("cat").asText();
                String name = event.path("name").asText();
                if (category.equals("Node") && name.endsWith("_kernel_time")) {
                    microsByOp.merge(event.path("args").path("op_name").asText(), event.path("dur").asLong(), Long::sum);
                } else if (category.equals("Session") && name.equals("model_run")) {
                    microsByOp.merge(WHOLE_RUN, event.path("dur").asLong(), Long::sum);
                }
            }
        } finally {
            Files.deleteIfExists(trace);
        }
        return microsByOp;
    }

    /** {@link #endProfiling}'s microseconds by operator type as milliseconds per run of {@code runs}, largest first. */
    static Map<String, Double> perRun(Map<String, Long> microsByOp, int runs) {
        Map<String, Double> perRun = new LinkedHashMap<>();
        microsByOp.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed())
                .forEach(op -> perRun.put(op.getKey(), Math.round(op.getValue() / 10.0 / runs) / 100.0));
        return perRun;
    }

    /** The empty past of a prefill of n rows, and the extra inputs: the tensors a generation creates once and closes. */
    private Map<String, OnnxTensor> prefillInputs(int n) throws OrtException {
        Map<String, OnnxTensor> prefillInputs = new HashMap<>();
        for (Map.Entry<String, FloatTensor> input : extraInputs.entrySet()) {
            prefillInputs.put(input.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(input.getValue().values()),
                    input.getValue().shape()));
        }
        long[] pastShape = {n, kvHeads, 0, config.headDim()};
        for (int layer = 0; layer < config.numLayers(); layer++) {
            prefillInputs.put(GraphNames.pastKey(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape));
            prefillInputs.put(GraphNames.pastValue(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape));
        }
        return prefillInputs;
    }

    /** One run of n rows of {@code ids.length / n} new tokens each after {@code past} cached ones. */
    private OrtSession.Result step(long[] ids, int n, int past, Map<String, OnnxTensor> pastTensors) throws OrtException {
        int rows = ids.length / n;
        int total = past + rows;
        long[] mask = new long[n * total];
        Arrays.fill(mask, 1);
        long[] positions = new long[n * rows];
        Arrays.setAll(positions, i -> past + i % rows);
        Map<String, OnnxTensor> inputs = new HashMap<>(pastTensors);
        try (OnnxTensor inputIds = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {n, rows});
             OnnxTensor attentionMask = OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {n, total});
             OnnxTensor positionIds = OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {n, rows})) {
            inputs.put(GraphNames.INPUT_IDS, inputIds);
            inputs.put(GraphNames.ATTENTION_MASK, attentionMask);
            inputs.put(GraphNames.POSITION_IDS, positionIds);
            return session.run(inputs);
        }
    }

    private static OnnxTensor tensor(OrtSession.Result result, String name) {
        return (OnnxTensor) result.get(name).orElseThrow();
    }

    /** Each row's arg-max over its last position's logits into generated[row][t]. */
    private void argmaxLast(OrtSession.Result result, int n, int[][] generated, int t) {
        FloatBuffer logits = tensor(result, GraphNames.LOGITS).getFloatBuffer();
        int vocab = config.vocabSize();
        int positions = logits.limit() / vocab / n;
        for (int b = 0; b < n; b++) {
            int last = ((b + 1) * positions - 1) * vocab;
            int best = 0;
            for (int v = 1; v < vocab; v++) {
                if (logits.get(last + v) > logits.get(last + best)) {
                    best = v;
                }
            }
            generated[b][t] = best;
        }
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
