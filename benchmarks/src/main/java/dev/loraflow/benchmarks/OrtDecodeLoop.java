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
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Locale;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Batch-1 greedy generation through ONNX Runtime directly, without the engine (by default with the session
 * options the engine uses, {@link EngineSettings#configure}): prefill of the prompt, then one run per token
 * past_key_values.* and present.* one buffer, the arg-max of the last logits row. The reference the
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
     * (batch n: every run has n rows, no padding); one row of tokens per prompt. Each past_key_values.* and its
     * present.* are one buffer of the whole generation's slots [n, kv_heads, prompt + count, head_dim] (ONNX
     * Runtime writes each step's new keys into it in place), the logits a buffer of the step's rows: nothing is
     * allocated or copied per step but the ids, mask and positions.
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
        List<OnnxTensor> owned = new ArrayList<>();
        try {
            Map<String, OnnxTensor> cache = new HashMap<>(extraTensors(owned));
            Map<String, OnnxTensor> present = new HashMap<>();
            long[] cacheShape = {n, kvHeads, length + count, config.headDim()};
            int floats = Math.toIntExact(cacheShape[0] * cacheShape[1] * cacheShape[2] * cacheShape[3]);
            for (int layer = 0; layer < config.numLayers(); layer++) {
                for (boolean key : new boolean[] {true, false}) {
                    FloatBuffer buffer = ByteBuffer.allocateDirect(floats * Float.BYTES).order(ByteOrder.nativeOrder())
                            .asFloatBuffer();
                    cache.put(key ? GraphNames.pastKey(layer) : GraphNames.pastValue(layer),
                            track(owned, OnnxTensor.createTensor(env, buffer, cacheShape)));
                    present.put(key ? GraphNames.presentKey(layer) : GraphNames.presentValue(layer),
                            track(owned, OnnxTensor.createTensor(env, buffer, cacheShape)));
                }
            }
            int vocab = config.vocabSize();
            FloatBuffer logits = ByteBuffer.allocateDirect(n * length * vocab * Float.BYTES).order(ByteOrder.nativeOrder())
                    .asFloatBuffer();
            step(ids, n, 0, cache, withLogits(present, logits, n, length, owned));
            argmaxLast(logits, n, length, generated, 0);
            stamps[0] = System.nanoTime();
            Map<String, OnnxTensor> decodeOutputs = withLogits(present, logits, n, 1, owned);
            long[] next = new long[n];
            for (int t = 1; t < count; t++) {
                for (int b = 0; b < n; b++) {
                    next[b] = generated[b][t - 1];
                }
                step(next, n, length + t - 1, cache, decodeOutputs);
                argmaxLast(logits, n, 1, generated, t);
                stamps[t] = System.nanoTime();
            }
            return generated;
        } finally {
            owned.forEach(OnnxTensor::close);
        }
    }

    /** {@code present} and the logits [n, rows, vocab] over {@code logits}' first floats. */
    private Map<String, OnnxTensor> withLogits(Map<String, OnnxTensor> present, FloatBuffer logits, int n, int rows,
                                               List<OnnxTensor> owned) throws OrtException {
        Map<String, OnnxTensor> outputs = new HashMap<>(present);
        int vocab = config.vocabSize();
        outputs.put(GraphNames.LOGITS, track(owned, OnnxTensor.createTensor(env, logits.slice(0, n * rows * vocab),
                new long[] {n, rows, vocab})));
        return outputs;
    }

    private static OnnxTensor track(List<OnnxTensor> owned, OnnxTensor tensor) {
        owned.add(tensor);
        return tensor;
    }

    /** Every step runs the whole sequence so far with an empty past. */
    int[] generateWithoutCache(int[] prompt, int count) throws OrtException {
        long[] sequence = new long[prompt.length + count];
        for (int i = 0; i < prompt.length; i++) {
            sequence[i] = prompt[i];
        }
        int[][] generated = new int[1][count];
        List<OnnxTensor> owned = new ArrayList<>();
        try {
            Map<String, OnnxTensor> emptyPast = new HashMap<>(extraTensors(owned));
            long[] pastShape = {1, kvHeads, 0, config.headDim()};
            for (int layer = 0; layer < config.numLayers(); layer++) {
                emptyPast.put(GraphNames.pastKey(layer), track(owned, OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape)));
                emptyPast.put(GraphNames.pastValue(layer), track(owned, OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape)));
            }
            for (int t = 0; t < count; t++) {
                int length = prompt.length + t;
                FloatBuffer logits = FloatBuffer.allocate(length * config.vocabSize());
                try (OnnxTensor logitsTensor = OnnxTensor.createTensor(env, logits, new long[] {1, length, config.vocabSize()})) {
                    // Only the logits are pinned: ONNX Runtime allocates this run's present.* itself.
                    step(Arrays.copyOf(sequence, length), 1, 0, emptyPast, Map.of(GraphNames.LOGITS, logitsTensor));
                    argmaxLast(logitsTensor.getFloatBuffer(), 1, length, generated, t);
                }
                sequence[length] = generated[0][t];
            }
            return generated[0];
        } finally {
            owned.forEach(OnnxTensor::close);
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

    /** The extra inputs as tensors, which the caller closes. */
    private Map<String, OnnxTensor> extraTensors(List<OnnxTensor> owned) throws OrtException {
        Map<String, OnnxTensor> tensors = new HashMap<>();
        for (Map.Entry<String, FloatTensor> input : extraInputs.entrySet()) {
            tensors.put(input.getKey(), track(owned, OnnxTensor.createTensor(env,
                    FloatBuffer.wrap(input.getValue().values()), input.getValue().shape())));
        }
        return tensors;
    }

    /**
     * One run of n rows of {@code ids.length / n} new tokens each after {@code past} cached ones (an all-ones
     * mask over past + new), into {@code outputs}.
     */
    private void step(long[] ids, int n, int past, Map<String, OnnxTensor> pastTensors, Map<String, OnnxTensor> outputs)
            throws OrtException {
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
            session.run(inputs, outputs).close();
        }
    }

    /** Each row's arg-max over its last position's logits (of {@code rows} per row) into generated[row][t]. */
    private void argmaxLast(FloatBuffer logits, int n, int rows, int[][] generated, int t) {
        int vocab = config.vocabSize();
        for (int b = 0; b < n; b++) {
            int last = ((b + 1) * rows - 1) * vocab;
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
