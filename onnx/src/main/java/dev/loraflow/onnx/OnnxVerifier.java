package dev.loraflow.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.random.Rng;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Runs an exported graph under ONNX Runtime on a fixed probe and compares it with core's Java forward of
 * the same model: every logit row of every prompt token and of each greedily decoded token, each
 * sequence of the batch against the Java model run on that sequence alone. Nothing is announced
 * unverified: the result carries the measured error whether it passes or not.
 */
public final class OnnxVerifier {

    /** F32 logits may differ by this much: summation order, fused kernels. */
    public static final double DEFAULT_TOLERANCE = 1e-4;

    /**
     * The probe: {@code batch} prompts of lengths maxPromptLength, maxPromptLength − 2, … (at least 1),
     * left-padded to the longest, random ids from {@code seed}; then {@code decodeSteps} greedy tokens.
     *
     * @param kvCache decode by feeding present.* back as past_key_values.*; without, each step re-runs
     *                the whole sequence with an empty past
     */
    public record Probe(int batch, int maxPromptLength, int decodeSteps, boolean kvCache, long seed) {
        public Probe {
            if (batch <= 0 || maxPromptLength <= 0 || decodeSteps < 0) {
                throw new IllegalArgumentException("probe needs batch ≥ 1, prompts ≥ 1 token, decode steps ≥ 0; got "
                        + batch + ", " + maxPromptLength + ", " + decodeSteps);
            }
        }

        /** Batch 4 with left padding (7, 5, 3, 1 tokens), then 5 decode steps through the KV cache. */
        public static Probe standard() {
            return new Probe(4, 7, 5, true, 20240601L);
        }

        int promptLength(int sequence) {
            return Math.max(1, maxPromptLength - 2 * sequence);
        }
    }

    /**
     * @param maxAbsError      max |Δlogit| over every compared row; NaN when a logit was NaN or the run failed
     * @param rowsChecked      logit rows compared (one per sequence and token)
     * @param greedyIdentical  whether ONNX's argmax equalled the Java model's at every step
     * @param javaGreedy       the Java model's greedy continuation of each sequence (the tokens fed to both)
     * @param error            why ONNX Runtime could not run the graph, else null
     */
    public record Result(boolean passed, double maxAbsError, double tolerance, int rowsChecked, boolean greedyIdentical,
                         int[][] javaGreedy, String error) {

        public String summary() {
            if (error != null) {
                return "FAILED: ONNX Runtime could not run the graph: " + error;
            }
            return (passed ? "passed" : "FAILED") + ": max |Δlogit| " + String.format("%.3e", maxAbsError) + " over "
                    + rowsChecked + " rows (tolerance " + tolerance + "), greedy continuations "
                    + (greedyIdentical ? "identical" : "differ");
        }
    }

    private OnnxVerifier() {}

    /** The standard probe, tolerance 1e-4, no extra inputs, one ONNX Runtime thread. */
    public static Result verify(Path onnxModel, CausalLanguageModel reference) {
        return verify(onnxModel, reference, Probe.standard(), Map.of(), DEFAULT_TOLERANCE, 1);
    }

    /**
     * @param reference   the model the graph was exported from, adapters un-merged or merged
     * @param extraInputs fed with every run: an un-merged graph's LoRA inputs, rank 0 for any not given
     * @param threads     ONNX Runtime intra-op threads
     */
    public static Result verify(Path onnxModel, CausalLanguageModel reference, Probe probe,
                                Map<String, FloatTensor> extraInputs, double tolerance, int threads) {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(threads);
            try (OrtSession session = env.createSession(onnxModel.toString(), options)) {
                return verify(session, reference, probe, extraInputs, tolerance);
            }
        } catch (OrtException e) {
            return failure(tolerance, e.getMessage());
        }
    }

    /** Runs the probe on an open session. */
    public static Result verify(OrtSession session, CausalLanguageModel reference, Probe probe,
                                Map<String, FloatTensor> extraInputs, double tolerance) {
        ModelConfig config = reference.config();
        int longest = probe.maxPromptLength() + probe.decodeSteps();
        if (longest > config.maxPositions()) {
            throw new IllegalArgumentException("the probe needs " + longest + " positions, the model has "
                    + config.maxPositions());
        }
        try {
            Map<String, FloatTensor> feeds = LoraInputs.withDefaults(session.getInputInfo(), extraInputs);
            return new Run(session, reference, probe, feeds, tolerance).run();
        } catch (OrtException e) {
            return failure(tolerance, e.getMessage());
        }
    }

    private static Result failure(double tolerance, String message) {
        return new Result(false, Double.NaN, tolerance, 0, false, new int[0][], Objects.requireNonNullElse(message, "unknown error"));
    }

    static int kvHeads(ModelConfig config) {
        return switch (config) {
            case Gpt2Config gpt2 -> gpt2.numHeads();
            case DecoderConfig decoder -> decoder.numKeyValueHeads();
        };
    }

    /** One probe's state: the padded batch as ONNX sees it and each sequence's Java KV cache. */
    private static final class Run {
        private final OrtEnvironment env = OrtEnvironment.getEnvironment();
        private final OrtSession session;
        private final CausalLanguageModel model;
        private final ModelConfig config;
        private final Probe probe;
        private final Map<String, FloatTensor> extraInputs;
        private final double tolerance;
        private final int vocab;
        private final int batch;
        private final int padded;
        /** [batch][tokens so far], without padding. */
        private final List<List<Integer>> sequences = new ArrayList<>();
        private final int[][] javaGreedy;
        private double maxAbsError;
        private boolean sawNaN;
        private int rowsChecked;
        private boolean greedyIdentical = true;

        Run(OrtSession session, CausalLanguageModel model, Probe probe, Map<String, FloatTensor> extraInputs,
            double tolerance) {
            this.session = session;
            this.model = model;
            this.config = model.config();
            this.probe = probe;
            this.extraInputs = extraInputs;
            this.tolerance = tolerance;
            this.vocab = config.vocabSize();
            this.batch = probe.batch();
            this.padded = probe.promptLength(0);
            Rng rng = new Rng(probe.seed());
            for (int b = 0; b < batch; b++) {
                List<Integer> prompt = new ArrayList<>();
                for (int t = 0; t < probe.promptLength(b); t++) {
                    prompt.add((int) Math.floorMod(rng.nextLong(), vocab));
                }
                sequences.add(prompt);
            }
            this.javaGreedy = new int[batch][probe.decodeSteps()];
        }

        Result run() throws OrtException {
            CausalLanguageModel.KvCache[] caches = new CausalLanguageModel.KvCache[batch];
            float[][] promptLogits = new float[batch][];
            float[][] javaLast = new float[batch][];
            for (int b = 0; b < batch; b++) {
                int[] prompt = ids(b);
                CausalLanguageModel.Workspace ws = model.newWorkspace(1, prompt.length);
                model.forward(ws, prompt, null, false, 0);
                promptLogits[b] = ws.logits();
                javaLast[b] = Arrays.copyOfRange(ws.logits(), (prompt.length - 1) * vocab, prompt.length * vocab);
                caches[b] = model.newKvCache(prompt.length + probe.decodeSteps());
                model.decode(caches[b], prompt);
            }

            Map<String, OnnxTensor> emptyPast = emptyPast();
            OrtSession.Result result = null;
            try {
                result = runOnnx(padded, 0, emptyPast);
                float[] logits = logits(result);
                for (int b = 0; b < batch; b++) {
                    int length = sequences.get(b).size();
                    for (int t = 0; t < length; t++) {
                        compare(promptLogits[b], t, logits, (b * padded + padded - length + t) * vocab);
                    }
                }
                float[][] onnxLast = lastRows(logits, padded);
                for (int step = 0; step < probe.decodeSteps(); step++) {
                    // Both sides are fed the Java model's choice, so that a differing argmax does not end the comparison.
                    for (int b = 0; b < batch; b++) {
                        int javaToken = argmax(javaLast[b]);
                        greedyIdentical &= argmax(onnxLast[b]) == javaToken;
                        javaGreedy[b][step] = javaToken;
                        sequences.get(b).add(javaToken);
                        javaLast[b] = model.decode(caches[b], new int[] {javaToken}).clone();
                    }
                    int total = padded + step + 1;
                    int rows = probe.kvCache() ? 1 : total;
                    OrtSession.Result next = probe.kvCache()
                            ? runOnnx(1, total - 1, presentAsPast(result))
                            : runOnnx(total, 0, emptyPast);
                    result.close();
                    result = next;
                    logits = logits(result);
                    onnxLast = lastRows(logits, rows);
                    for (int b = 0; b < batch; b++) {
                        compare(javaLast[b], 0, logits, (b * rows + rows - 1) * vocab);
                    }
                }
            } finally {
                if (result != null) {
                    result.close();
                }
                emptyPast.values().forEach(OnnxTensor::close);
            }
            boolean passed = !sawNaN && maxAbsError <= tolerance && greedyIdentical;
            return new Result(passed, sawNaN ? Double.NaN : maxAbsError, tolerance, rowsChecked, greedyIdentical,
                    javaGreedy, null);
        }

        private int[] ids(int b) {
            return sequences.get(b).stream().mapToInt(Integer::intValue).toArray();
        }

        /**
         * Runs the last {@code rows} tokens of every sequence, left-padded to {@code past + rows}, after
         * {@code past} cached ones; position ids are the mask's cumulative sum − 1, padding at 1, as
         * Transformers' generate makes them.
         */
        private OrtSession.Result runOnnx(int rows, int pastLength, Map<String, OnnxTensor> pastInputs) throws OrtException {
            int total = pastLength + rows;
            long[] inputIds = new long[batch * rows];
            long[] mask = new long[batch * total];
            long[] positions = new long[batch * rows];
            for (int b = 0; b < batch; b++) {
                List<Integer> tokens = sequences.get(b);
                int padding = total - tokens.size();
                for (int j = 0; j < total; j++) {
                    mask[b * total + j] = j >= padding ? 1 : 0;
                }
                for (int i = 0; i < rows; i++) {
                    int j = pastLength + i;
                    inputIds[b * rows + i] = j >= padding ? tokens.get(j - padding) : 0;
                    positions[b * rows + i] = j >= padding ? j - padding : 1;
                }
            }
            Map<String, OnnxTensor> inputs = new HashMap<>(pastInputs);
            List<OnnxTensor> owned = new ArrayList<>();
            try {
                owned.add(longTensor(GraphNames.INPUT_IDS, inputIds, batch, rows, inputs));
                owned.add(longTensor(GraphNames.ATTENTION_MASK, mask, batch, total, inputs));
                owned.add(longTensor(GraphNames.POSITION_IDS, positions, batch, rows, inputs));
                for (var extra : extraInputs.entrySet()) {
                    OnnxTensor tensor = OnnxTensor.createTensor(env, FloatBuffer.wrap(extra.getValue().values()),
                            extra.getValue().shape());
                    owned.add(tensor);
                    inputs.put(extra.getKey(), tensor);
                }
                return session.run(inputs);
            } finally {
                owned.forEach(OnnxTensor::close);
            }
        }

        private OnnxTensor longTensor(String name, long[] values, int rows, int cols, Map<String, OnnxTensor> inputs)
                throws OrtException {
            OnnxTensor tensor = OnnxTensor.createTensor(env, LongBuffer.wrap(values), new long[] {rows, cols});
            inputs.put(name, tensor);
            return tensor;
        }

        private Map<String, OnnxTensor> emptyPast() throws OrtException {
            Map<String, OnnxTensor> past = new HashMap<>();
            long[] shape = {batch, kvHeads(config), 0, config.headDim()};
            for (int layer = 0; layer < config.numLayers(); layer++) {
                past.put(GraphNames.pastKey(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), shape));
                past.put(GraphNames.pastValue(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), shape));
            }
            return past;
        }

        /** The result's present tensors under the past input names; the result still owns them. */
        private Map<String, OnnxTensor> presentAsPast(OrtSession.Result result) {
            Map<String, OnnxTensor> past = new HashMap<>();
            for (int layer = 0; layer < config.numLayers(); layer++) {
                past.put(GraphNames.pastKey(layer), output(result, GraphNames.presentKey(layer)));
                past.put(GraphNames.pastValue(layer), output(result, GraphNames.presentValue(layer)));
            }
            return past;
        }

        private static OnnxTensor output(OrtSession.Result result, String name) {
            OnnxValue value = result.get(name).orElseThrow(() -> new IllegalStateException("the graph has no output " + name));
            return (OnnxTensor) value;
        }

        private static float[] logits(OrtSession.Result result) {
            FloatBuffer buffer = output(result, GraphNames.LOGITS).getFloatBuffer();
            float[] values = new float[buffer.remaining()];
            buffer.get(values);
            return values;
        }

        private float[][] lastRows(float[] logits, int rows) {
            float[][] last = new float[batch][];
            for (int b = 0; b < batch; b++) {
                int from = (b * rows + rows - 1) * vocab;
                last[b] = Arrays.copyOfRange(logits, from, from + vocab);
            }
            return last;
        }

        private void compare(float[] expected, int expectedRow, float[] actual, int actualOffset) {
            for (int v = 0; v < vocab; v++) {
                double difference = Math.abs((double) expected[expectedRow * vocab + v] - actual[actualOffset + v]);
                if (Double.isNaN(difference)) {
                    sawNaN = true;
                } else {
                    maxAbsError = Math.max(maxAbsError, difference);
                }
            }
            rowsChecked++;
        }

        private static int argmax(float[] values) {
            int best = 0;
            for (int i = 1; i < values.length; i++) {
                if (values[i] > values[best]) {
                    best = i;
                }
            }
            return best;
        }
    }
}
