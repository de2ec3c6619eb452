package dev.loraflow.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.generate.Sampler;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.train.Evaluation;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Runs an exported graph under ONNX Runtime on a fixed probe and compares it with core's Java forward of
 * the same model: every logit row of every prompt token and of each greedily decoded token, each
 * sequence of the batch against the Java model run on that sequence alone. Nothing is announced
 * unverified: the result carries the measured error whether it passes or not.
 */
public final class OnnxVerifier {

    /** F32 logits may differ by this much: summation order, fused kernels. */
    public static final double DEFAULT_TOLERANCE = 1e-4;
    /** Sequences per forward of the Java reference's held-out loss. */
    static final int HELD_OUT_BATCH = 8;

    /**
     * What a quantized graph must keep. Its logits differ from the F32 forward by design (how much depends on
     * the weights far more than on the export: a random model's noise is not a trained one's), and near-tied
     * greedy choices may flip, so the probe's logit error is measured and reported, and must be finite; what
     * decides is the held-out loss, when a data set is given: at most {@code maxLossIncrease} above the F32
     * model's.
     *
     * @param maxLossIncrease (quantized loss − F32 loss) / F32 loss
     */
    public record QuantizedBounds(double maxLossIncrease) {
        public QuantizedBounds {
            if (!(maxLossIncrease >= 0) || Double.isInfinite(maxLossIncrease)) {
                throw new IllegalArgumentException("the loss bound must be a fraction ≥ 0, got " + maxLossIncrease);
            }
        }

        /** The defaults of issue 14: a held-out loss at most 1 % higher for int8, 5 % for int4. */
        public static QuantizedBounds defaults(WeightQuantization.Precision precision) {
            return switch (precision) {
                case F32 -> throw new IllegalArgumentException("float32 graphs are held to the F32 tolerance");
                case INT8 -> new QuantizedBounds(0.01);
                case INT4 -> new QuantizedBounds(0.05);
            };
        }
    }

    /**
     * The probe: {@code batch} prompts of lengths maxPromptLength, maxPromptLength − 2, … (at least 1),
     * right-padded to the longest, random ids from {@code seed}; then {@code decodeSteps} greedy tokens.
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

        /** Batch 4 with right padding (7, 5, 3, 1 tokens), then 5 decode steps through the KV cache. */
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
                         int[][] javaGreedy, String error, double maxAbsReference) {

        public Result(boolean passed, double maxAbsError, double tolerance, int rowsChecked, boolean greedyIdentical,
                      int[][] javaGreedy, String error) {
            this(passed, maxAbsError, tolerance, rowsChecked, greedyIdentical, javaGreedy, error, Double.NaN);
        }

        /** max |Δlogit| / max |Java logit| over the compared rows. */
        public double relativeError() {
            return maxAbsError / maxAbsReference;
        }

        public String summary() {
            if (error != null) {
                return "FAILED: ONNX Runtime could not run the graph: " + error;
            }
            return (passed ? "passed" : "FAILED") + ": max |Δlogit| " + String.format("%.3e", maxAbsError) + " over "
                    + rowsChecked + " rows (tolerance " + tolerance + "), greedy continuations "
                    + (greedyIdentical ? "identical" : "differ");
        }
    }

    /**
     * A quantized graph's check: the probe's logit error and, with held-out data, the loss of both models.
     *
     * @param probe       the probe run, its tolerance the relative bound and greedy choices not required to match
     * @param f32Loss     the Java F32 model's mean cross-entropy on the held-out data, NaN without data
     * @param graphLoss   the graph's, likewise
     */
    public record QuantizedResult(Result probe, QuantizedBounds bounds, double f32Loss, double graphLoss, long tokens) {

        public boolean hasLoss() {
            return !Double.isNaN(f32Loss);
        }

        /** (graph loss − F32 loss) / F32 loss. */
        public double lossIncrease() {
            return (graphLoss - f32Loss) / f32Loss;
        }

        public boolean passed() {
            return probe.error() == null && !Double.isNaN(probe.maxAbsError())
                    && (!hasLoss() || (!Double.isNaN(graphLoss) && lossIncrease() <= bounds.maxLossIncrease()));
        }

        public String summary() {
            if (probe.error() != null) {
                return probe.summary();
            }
            StringBuilder text = new StringBuilder(passed() ? "passed" : "FAILED").append(String.format(
                    ": max |Δlogit| %.3e (%.2f %% of the largest F32 logit)", probe.maxAbsError(), 100 * probe.relativeError()));
            if (Double.isNaN(probe.maxAbsError())) {
                text.append(", a NaN logit");
            }
            if (hasLoss()) {
                text.append(String.format("; held-out loss %.5f (F32 %.5f, %+.2f %%, bound +%.1f %%) over %d tokens",
                        graphLoss, f32Loss, 100 * lossIncrease(), 100 * bounds.maxLossIncrease(), tokens));
            }
            return text.toString();
        }
    }

    private OnnxVerifier() {}

    /**
     * Ends the command with one line, before anything is exported, when verifying a graph of about {@code graphBytes}
     * against the Java model of {@code referenceDirectory} would not fit the memory available. The two run one after
     * the other ({@link Reference}): the Java reference reads every one of its mapped (BF16/F16) weights at each token,
     * and releases them before ONNX Runtime's session takes the graph's weights, so the larger of the two must fit,
     * not their sum (an 8 B BF16 model and its int4 graph: 15 GB, where side by side they needed 23 GB).
     *
     * @param graph   what the graph is, e.g. "the int4 graph"
     * @param options what would make it fit
     */
    public static void requireMemory(Path referenceDirectory, long graphBytes, String graph, String options)
            throws IOException {
        long reference = referenceBytes(referenceDirectory);
        Resources.requireMemory(verificationPeakBytes(reference, graphBytes), "to verify: "
                + Resources.size(reference) + " of mapped weights the Java reference runs on, released before ONNX"
                + " Runtime's session of " + graph + " takes " + Resources.size(graphBytes), options);
    }

    /**
     * Ends the command with one line, before anything is exported, when the Java reference's held-out loss — {@code
     * heldOut} in forward passes of {@value #HELD_OUT_BATCH} sequences as long as the longest, over the model of {@code
     * referenceDirectory} with the adapter of {@code lora} (null for none) — would not fit the heap: its logits alone
     * grow with the examples' length times the vocabulary.
     *
     * @param options what would make it fit, e.g. "shorter held-out examples in --verify-data"
     */
    public static void requireHeldOutHeap(Path referenceDirectory, LoraAdapterConfig lora, List<Example> heldOut,
                                          String options) throws IOException {
        if (!heldOut.isEmpty()) {
            ModelConfig config = ModelConfig.read(referenceDirectory.resolve("config.json"));
            Evaluation.memoryEstimate(referenceDirectory, config, lora, heldOut, HELD_OUT_BATCH).require(options);
        }
    }

    /** The Java reference's weights off the heap (mapped, or quantized in native memory), from the header alone. */
    static long referenceBytes(Path referenceDirectory) throws IOException {
        ModelConfig config = ModelConfig.read(referenceDirectory.resolve("config.json"));
        CheckpointWeights.Footprint reference = CheckpointWeights.footprint(referenceDirectory, ModelLayout.of(config),
                Quantization.NONE);
        return reference.mappedBytes() + reference.nativeBytes();
    }

    /** What verification holds at its peak: the reference's weights, or later the session's, never both. */
    static long verificationPeakBytes(long referenceBytes, long graphBytes) {
        return Math.max(referenceBytes, graphBytes);
    }

    /**
     * What the Java reference computes for a verification, kept so that its weights can go before ONNX Runtime
     * loads the graph: the probe's prompts, the logits of every prompt row and of each greedy step (the tokens
     * both sides are fed) and, with held-out examples, their loss. A few vocabulary-wide rows: an 8 B model's
     * probe keeps 24 MB where its weights are 15 GB.
     */
    public static final class Reference {
        private final ModelConfig config;
        private final Probe probe;
        private final int[][] prompts;
        /** [sequence][prompt token × vocab]. */
        private final float[][] promptLogits;
        /** [sequence][step]: the Java model's greedy token at each step, fed to both sides. */
        private final int[][] greedy;
        /** [step][sequence][vocab]: the logits after the step's token. */
        private final float[][][] stepLogits;
        private final List<Example> heldOut;
        private final Evaluation.Result heldOutLoss;

        private Reference(ModelConfig config, Probe probe, int[][] prompts, float[][] promptLogits, int[][] greedy,
                          float[][][] stepLogits, List<Example> heldOut, Evaluation.Result heldOutLoss) {
            this.config = config;
            this.probe = probe;
            this.prompts = prompts;
            this.promptLogits = promptLogits;
            this.greedy = greedy;
            this.stepLogits = stepLogits;
            this.heldOut = heldOut;
            this.heldOutLoss = heldOutLoss;
        }

        /**
         * Runs {@code model} over the probe (prompts of random ids from the probe's seed, then its greedy steps
         * through a KV cache) and, when {@code heldOut} is not empty, measures its loss there.
         */
        public static Reference of(CausalLanguageModel model, Probe probe, List<Example> heldOut, int padId) {
            ModelConfig config = model.config();
            int longest = probe.maxPromptLength() + probe.decodeSteps();
            if (longest > config.maxPositions()) {
                throw new IllegalArgumentException("the probe needs " + longest + " positions, the model has "
                        + config.maxPositions());
            }
            int vocab = config.vocabSize();
            int batch = probe.batch();
            Rng rng = new Rng(probe.seed());
            int[][] prompts = new int[batch][];
            for (int b = 0; b < batch; b++) {
                prompts[b] = new int[probe.promptLength(b)];
                for (int t = 0; t < prompts[b].length; t++) {
                    prompts[b][t] = (int) Math.floorMod(rng.nextLong(), vocab);
                }
            }
            float[][] promptLogits = new float[batch][];
            float[][] last = new float[batch][];
            CausalLanguageModel.KvCache[] caches = new CausalLanguageModel.KvCache[batch];
            for (int b = 0; b < batch; b++) {
                CausalLanguageModel.Workspace ws = model.newForwardWorkspace(1, prompts[b].length);
                model.forward(ws, prompts[b], null, false, 0);
                promptLogits[b] = ws.logits();
                last[b] = Arrays.copyOfRange(ws.logits(), (prompts[b].length - 1) * vocab, prompts[b].length * vocab);
                caches[b] = model.newKvCache(prompts[b].length + probe.decodeSteps());
                model.decode(caches[b], prompts[b]);
            }
            int[][] greedy = new int[batch][probe.decodeSteps()];
            float[][][] stepLogits = new float[probe.decodeSteps()][batch][];
            for (int step = 0; step < probe.decodeSteps(); step++) {
                for (int b = 0; b < batch; b++) {
                    greedy[b][step] = Sampler.argmax(last[b]);
                    last[b] = model.decode(caches[b], new int[] {greedy[b][step]}).clone();
                    stepLogits[step][b] = last[b];
                }
            }
            Evaluation.Result loss = heldOut.isEmpty() ? null : Evaluation.evaluate(model, heldOut, HELD_OUT_BATCH, padId);
            return new Reference(config, probe, prompts, promptLogits, greedy, stepLogits, List.copyOf(heldOut), loss);
        }

        /**
         * Loads the model of {@code modelDirectory} with {@code adapter} applied un-merged (null: the base alone), runs
         * {@link #of} on it and releases its weights (unmapped) before returning.
         */
        public static Reference of(Path modelDirectory, PeftAdapter adapter, Probe probe, List<Example> heldOut, int padId)
                throws IOException {
            try (Arena weights = Arena.ofShared()) {
                CausalLanguageModel model = CausalLanguageModel.load(modelDirectory,
                        adapter == null ? null : adapter.config(), 0, Quantization.NONE, weights);
                if (adapter != null) {
                    model.loadAdapter(adapter);
                }
                return of(model, probe, heldOut, padId);
            }
        }

        public ModelConfig config() {
            return config;
        }
    }

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
        return verify(onnxModel, Reference.of(reference, probe, List.of(), 0), extraInputs, tolerance, threads);
    }

    /** Checks the graph against what the Java model computed before ({@link Reference}), exactly as F32 must. */
    public static Result verify(Path onnxModel, Reference reference, Map<String, FloatTensor> extraInputs,
                                double tolerance, int threads) {
        try (OrtSession session = openSession(onnxModel, threads)) {
            return verify(session, reference, extraInputs, tolerance, true);
        } catch (OrtException e) {
            return failure(tolerance, e.getMessage());
        }
    }

    /**
     * Checks a quantized graph against its F32 reference: the standard probe's logit error, and with
     * {@code heldOut} (may be empty) the held-out loss of the Java F32 model and of the graph.
     */
    public static QuantizedResult verifyQuantized(Path onnxModel, CausalLanguageModel reference, List<Example> heldOut,
                                                  int padId, Map<String, FloatTensor> extraInputs, QuantizedBounds bounds,
                                                  int threads) {
        return verifyQuantized(onnxModel, Reference.of(reference, Probe.standard(), heldOut, padId), extraInputs, bounds,
                threads);
    }

    /** As above, against what the Java model computed before: its probe and, when it had held-out examples, their loss. */
    public static QuantizedResult verifyQuantized(Path onnxModel, Reference reference, Map<String, FloatTensor> extraInputs,
                                                  QuantizedBounds bounds, int threads) {
        try (OrtSession session = openSession(onnxModel, threads)) {
            Result probe = verify(session, reference, extraInputs, Double.POSITIVE_INFINITY, false);
            if (reference.heldOutLoss == null || probe.error() != null) {
                return new QuantizedResult(probe, bounds, Double.NaN, Double.NaN, 0);
            }
            double graphLoss = loss(session, reference.config, reference.heldOut, extraInputs);
            return new QuantizedResult(probe, bounds, reference.heldOutLoss.loss(), graphLoss,
                    reference.heldOutLoss.tokens());
        } catch (OrtException e) {
            return new QuantizedResult(failure(Double.POSITIVE_INFINITY, e.getMessage()), bounds, Double.NaN,
                    Double.NaN, 0);
        }
    }

    /**
     * A session of the graph, after a full collection: what ran before it (the reference, an export's quantized
     * weights: gigabytes at 8 B) is garbage by now, and the collection hands that heap back to the system before ONNX
     * Runtime takes the graph's weights outside it.
     */
    private static OrtSession openSession(Path onnxModel, int threads) throws OrtException {
        System.gc();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(threads);
            return OnnxRuntimeNatives.environment().createSession(onnxModel.toString(), options);
        }
    }

    /**
     * The graph's mean cross-entropy over every counted token of the examples, as core's Evaluation counts
     * it (labels shifted by one, −100 ignored, each example truncated to the context): each example run alone.
     */
    public static double loss(OrtSession session, ModelConfig config, List<Example> examples,
                              Map<String, FloatTensor> extraInputs) throws OrtException {
        OrtEnvironment env = OnnxRuntimeNatives.environment();
        Map<String, FloatTensor> feeds = LoraInputs.withDefaults(session.getInputInfo(), extraInputs);
        int vocab = config.vocabSize();
        double sum = 0;
        long tokens = 0;
        for (Example example : examples) {
            int length = Math.min(config.maxPositions(), example.length());
            int[] ids = example.inputIds();
            int[] labels = example.labels();
            long[] inputIds = new long[length];
            long[] mask = new long[length];
            long[] positions = new long[length];
            for (int t = 0; t < length; t++) {
                inputIds[t] = ids[t];
                mask[t] = 1;
                positions[t] = t;
            }
            List<OnnxTensor> owned = new ArrayList<>();
            try {
                Map<String, OnnxTensor> inputs = new HashMap<>();
                long[] shape = {1, length};
                inputs.put(GraphNames.INPUT_IDS, track(owned, OnnxTensor.createTensor(env, LongBuffer.wrap(inputIds), shape)));
                inputs.put(GraphNames.ATTENTION_MASK, track(owned, OnnxTensor.createTensor(env, LongBuffer.wrap(mask), shape)));
                inputs.put(GraphNames.POSITION_IDS, track(owned, OnnxTensor.createTensor(env, LongBuffer.wrap(positions), shape)));
                long[] pastShape = {1, kvHeads(config), 0, config.headDim()};
                for (int layer = 0; layer < config.numLayers(); layer++) {
                    inputs.put(GraphNames.pastKey(layer), track(owned, OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape)));
                    inputs.put(GraphNames.pastValue(layer), track(owned, OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape)));
                }
                for (var extra : feeds.entrySet()) {
                    inputs.put(extra.getKey(), track(owned, OnnxTensor.createTensor(env,
                            FloatBuffer.wrap(extra.getValue().values()), extra.getValue().shape())));
                }
                try (OrtSession.Result result = session.run(inputs, Set.of(GraphNames.LOGITS))) {
                    FloatBuffer logits = Run.output(result, GraphNames.LOGITS).getFloatBuffer();
                    for (int t = 0; t + 1 < length; t++) {
                        int label = labels[t + 1];
                        if (label == Softmax.IGNORE_INDEX) {
                            continue;
                        }
                        double max = Double.NEGATIVE_INFINITY;
                        for (int v = 0; v < vocab; v++) {
                            max = Math.max(max, logits.get(t * vocab + v));
                        }
                        double exps = 0;
                        for (int v = 0; v < vocab; v++) {
                            exps += Math.exp(logits.get(t * vocab + v) - max);
                        }
                        sum += max + Math.log(exps) - logits.get(t * vocab + label);
                        tokens++;
                    }
                }
            } finally {
                owned.forEach(OnnxTensor::close);
            }
        }
        return tokens == 0 ? 0 : sum / tokens;
    }

    private static OnnxTensor track(List<OnnxTensor> owned, OnnxTensor tensor) {
        owned.add(tensor);
        return tensor;
    }

    /** Runs the probe on an open session. */
    public static Result verify(OrtSession session, CausalLanguageModel reference, Probe probe,
                                Map<String, FloatTensor> extraInputs, double tolerance) {
        return verify(session, Reference.of(reference, probe, List.of(), 0), extraInputs, tolerance, true);
    }

    /**
     * @param exact F32: the absolute {@code tolerance} and identical greedy choices; otherwise (a quantized
     *              graph) {@code tolerance} bounds the error relative to the largest Java logit, greedy choices free
     */
    private static Result verify(OrtSession session, Reference reference, Map<String, FloatTensor> extraInputs,
                                 double tolerance, boolean exact) {
        try {
            Map<String, FloatTensor> feeds = LoraInputs.withDefaults(session.getInputInfo(), extraInputs);
            return new Run(session, reference, feeds, tolerance, exact).run();
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

    /** One probe's ONNX side: the padded batch as ONNX sees it, compared with the reference's recorded logits. */
    private static final class Run {
        private final OrtEnvironment env = OnnxRuntimeNatives.environment();
        private final OrtSession session;
        private final Reference reference;
        private final ModelConfig config;
        private final Probe probe;
        private final Map<String, FloatTensor> extraInputs;
        private final double tolerance;
        private final boolean exact;
        private final int vocab;
        private final int batch;
        private final int padded;
        /** [batch][tokens so far], without padding. */
        private final List<List<Integer>> sequences = new ArrayList<>();
        private double maxAbsError;
        private double maxAbsReference;
        private boolean sawNaN;
        private int rowsChecked;
        private boolean greedyIdentical = true;

        Run(OrtSession session, Reference reference, Map<String, FloatTensor> extraInputs, double tolerance,
            boolean exact) {
            this.exact = exact;
            this.session = session;
            this.reference = reference;
            this.config = reference.config;
            this.probe = reference.probe;
            this.extraInputs = extraInputs;
            this.tolerance = tolerance;
            this.vocab = config.vocabSize();
            this.batch = probe.batch();
            this.padded = probe.promptLength(0);
            for (int[] prompt : reference.prompts) {
                sequences.add(new ArrayList<>(Arrays.stream(prompt).boxed().toList()));
            }
        }

        Result run() throws OrtException {
            Map<String, OnnxTensor> emptyPast = emptyPast();
            OrtSession.Result result = null;
            try {
                result = runOnnx(false, emptyPast);
                float[] logits = logits(result);
                for (int b = 0; b < batch; b++) {
                    int length = sequences.get(b).size();
                    for (int t = 0; t < length; t++) {
                        compare(reference.promptLogits[b], t, logits, (b * padded + t) * vocab);
                    }
                }
                float[][] onnxLast = lastRows(logits, padded, false);
                for (int step = 0; step < probe.decodeSteps(); step++) {
                    // Both sides are fed the Java model's choice, so that a differing argmax does not end the comparison.
                    for (int b = 0; b < batch; b++) {
                        int javaToken = reference.greedy[b][step];
                        greedyIdentical &= Sampler.argmax(onnxLast[b]) == javaToken;
                        sequences.get(b).add(javaToken);
                    }
                    int rows = probe.kvCache() ? 1 : padded + step + 1;
                    OrtSession.Result next = probe.kvCache()
                            ? runOnnx(true, presentAsPast(result))
                            : runOnnx(false, emptyPast);
                    result.close();
                    result = next;
                    logits = logits(result);
                    onnxLast = lastRows(logits, rows, probe.kvCache());
                    for (int b = 0; b < batch; b++) {
                        compare(reference.stepLogits[step][b], 0, onnxLast[b], 0);
                    }
                }
            } finally {
                if (result != null) {
                    result.close();
                }
                emptyPast.values().forEach(OnnxTensor::close);
            }
            boolean passed = !sawNaN && (exact ? maxAbsError <= tolerance && greedyIdentical
                    : maxAbsError <= tolerance * maxAbsReference);
            return new Result(passed, sawNaN ? Double.NaN : maxAbsError, tolerance, rowsChecked, greedyIdentical,
                    reference.greedy, null, maxAbsReference);
        }

        /**
         * Runs every sequence, right-padded to the longest (the mask's width): its last token after the cached
         * ones ({@code decodeStep}, the past holding each row's tokens but the last in its first slots), or all
         * of its tokens with an empty past; position ids 0, 1, … per row, padding at 0.
         */
        private OrtSession.Result runOnnx(boolean decodeStep, Map<String, OnnxTensor> pastInputs) throws OrtException {
            int total = sequences.stream().mapToInt(List::size).max().orElseThrow();
            int rows = decodeStep ? 1 : total;
            long[] inputIds = new long[batch * rows];
            long[] mask = new long[batch * total];
            long[] positions = new long[batch * rows];
            for (int b = 0; b < batch; b++) {
                List<Integer> tokens = sequences.get(b);
                Arrays.fill(mask, b * total, b * total + tokens.size(), 1L);
                int first = decodeStep ? tokens.size() - 1 : 0;
                for (int i = 0; i < rows && first + i < tokens.size(); i++) {
                    inputIds[b * rows + i] = tokens.get(first + i);
                    positions[b * rows + i] = first + i;
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

        static OnnxTensor output(OrtSession.Result result, String name) {
            OnnxValue value = result.get(name).orElseThrow(() -> new IllegalStateException("the graph has no output " + name));
            return (OnnxTensor) value;
        }

        private static float[] logits(OrtSession.Result result) {
            FloatBuffer buffer = output(result, GraphNames.LOGITS).getFloatBuffer();
            float[] values = new float[buffer.remaining()];
            buffer.get(values);
            return values;
        }

        /** Each row's logits at its last token: the one new token of a decode step, or the row's last of {@code rows}. */
        private float[][] lastRows(float[] logits, int rows, boolean decodeStep) {
            float[][] last = new float[batch][];
            for (int b = 0; b < batch; b++) {
                int from = (b * rows + (decodeStep ? 0 : sequences.get(b).size() - 1)) * vocab;
                last[b] = Arrays.copyOfRange(logits, from, from + vocab);
            }
            return last;
        }

        private void compare(float[] expected, int expectedRow, float[] actual, int actualOffset) {
            for (int v = 0; v < vocab; v++) {
                maxAbsReference = Math.max(maxAbsReference, Math.abs(expected[expectedRow * vocab + v]));
                double difference = Math.abs((double) expected[expectedRow * vocab + v] - actual[actualOffset + v]);
                if (Double.isNaN(difference)) {
                    sawNaN = true;
                } else {
                    maxAbsError = Math.max(maxAbsError, difference);
                }
            }
            rowsChecked++;
        }
    }
}
