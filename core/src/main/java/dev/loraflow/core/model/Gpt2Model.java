package dev.loraflow.core.model;

import dev.loraflow.core.kernels.Activations;
import dev.loraflow.core.kernels.Attention;
import dev.loraflow.core.kernels.CachedAttention;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.Gemm;
import dev.loraflow.core.kernels.Norms;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.kernels.VectorMath;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.lora.LoraSpec;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * GPT-2 ({@code GPT2LMHeadModel}) with LoRA adapters, forward and backward, in float32.
 *
 * <p>Token and learned position embeddings; {@code n_layer} pre-LayerNorm blocks
 * {@code x += c_proj(attn(c_attn(ln_1(x))))}, {@code x += mlp.c_proj(gelu_new(c_fc(ln_2(x))))} with
 * causal attention scaled by 1/√d_head; {@code ln_f}; logits {@code x·wteᵀ} (the head is tied to the
 * token embedding). Every Conv1D is a {@link LoRALinear} over the checkpoint's [in, out] weight
 * ({@code fanInFanOut}); those PEFT's rules select carry an adapter of their rank, the rest rank 0.
 * Base weights are held as given and never written; only the adapters' A and B are trainable.
 *
 * <p>All memory a batch shape needs — saved activations, scratch and gradients — is planned once in a
 * {@link Workspace}; forward and backward then allocate nothing. The backward recomputes a LayerNorm's
 * output (or the GELU's) only where an adapter needs it as input, and a block keeps its attention
 * output only when its {@code c_proj} is adapted, so nothing is saved that the backward does not read.
 */
public final class Gpt2Model implements CausalLanguageModel {

    /** Conv1D modules of a block, in Transformers' module order. */
    private static final int C_ATTN = 0;
    private static final int ATTN_PROJ = 1;
    private static final int C_FC = 2;
    private static final int MLP_PROJ = 3;
    private static final String[] MODULES = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};

    private final Gpt2Config config;
    private final ModelLayout layout;
    private final LoraAdapterConfig loraConfig;
    private final List<LoraTarget> targets;
    private final float[] wte;
    private final float[] wpe;
    private final float[] lnfWeight;
    private final float[] lnfBias;
    private final Block[] blocks;
    private final Map<String, LoRALinear> adapted;

    private record Block(float[] ln1Weight, float[] ln1Bias, float[] ln2Weight, float[] ln2Bias, LoRALinear[] modules) {}

    /**
     * @param weights canonical tensor name → values (see {@link ModelLayout}); held, not copied
     * @param lora    which modules get adapters, with what rank, alpha and dropout; null for none
     * @param seed    seeds the adapters' A initialisation
     * @throws CheckpointLayoutException if a tensor is missing, unknown or of the wrong size
     * @throws IllegalArgumentException  if the LoRA config targets no module, the tied output head, or
     *                                   asks for trainable biases
     */
    public Gpt2Model(Gpt2Config config, Map<String, float[]> weights, LoraAdapterConfig lora, long seed) {
        this(config, weights, Map.of(), lora, seed);
    }

    /**
     * @param frozen linear weights held off the heap or quantized, by canonical name; {@code weights} holds
     *               every other tensor
     */
    public Gpt2Model(Gpt2Config config, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen,
                     LoraAdapterConfig lora, long seed) {
        this.config = Objects.requireNonNull(config, "config");
        this.layout = ModelLayout.of(config);
        CheckpointWeights.requireComplete(weights, frozen, layout);
        this.loraConfig = lora;
        this.targets = lora == null ? List.of() : LoraTargets.select(layout, lora);
        if (lora != null && lora.bias() != LoraAdapterConfig.Bias.NONE) {
            throw new IllegalArgumentException("LoRA bias \"" + lora.bias().json()
                    + "\" (trainable biases) is not supported; use \"none\"");
        }
        Map<String, LoraTarget> byPath = new LinkedHashMap<>();
        for (LoraTarget target : targets) {
            if (target.modulePath().equals(ModelLayout.OUTPUT_HEAD)) {
                throw new IllegalArgumentException("LoRA on " + ModelLayout.OUTPUT_HEAD
                        + " is not supported: GPT-2 ties it to wte; target the transformer's modules only");
            }
            byPath.put(target.modulePath(), target);
        }
        this.wte = weights.get("wte.weight");
        this.wpe = weights.get("wpe.weight");
        this.lnfWeight = weights.get("ln_f.weight");
        this.lnfBias = weights.get("ln_f.bias");
        this.blocks = new Block[config.numLayers()];
        Map<String, LoRALinear> adaptedModules = new LinkedHashMap<>();
        Map<String, LinearModule> linearModules = new HashMap<>();
        layout.linearModules().forEach(module -> linearModules.put(module.path(), module));
        for (int layer = 0; layer < blocks.length; layer++) {
            String prefix = "h." + layer + ".";
            LoRALinear[] modules = new LoRALinear[MODULES.length];
            for (int m = 0; m < MODULES.length; m++) {
                String canonical = prefix + MODULES[m];
                LinearModule linear = linearModules.get(canonical);
                String peftPath = layout.peftModulePath(canonical);
                LoraTarget target = byPath.get(peftPath);
                LoraSpec spec = target == null
                        ? new LoraSpec(0, 0f, 0f, false)
                        : new LoraSpec(target.rank(), (float) target.alpha(), (float) lora.loraDropout(), lora.useRslora());
                // Conv1D stores [in, out], so fanInFanOut, which PEFT also forces whatever the config says.
                float[] weight = weights.get(canonical + ".weight");
                modules[m] = LoRALinear.of(peftPath, linear.in(), linear.out(), weight,
                        weight == null ? frozen.get(canonical + ".weight") : null,
                        weights.get(canonical + ".bias"), linear.fanInFanOut(), spec,
                        Rng.hash(seed, (long) layer * MODULES.length + m));
                if (target != null) {
                    adaptedModules.put(peftPath, modules[m]);
                }
            }
            blocks[layer] = new Block(weights.get(prefix + "ln_1.weight"), weights.get(prefix + "ln_1.bias"),
                    weights.get(prefix + "ln_2.weight"), weights.get(prefix + "ln_2.bias"), modules);
        }
        this.adapted = Collections.unmodifiableMap(adaptedModules);
    }

    /**
     * Loads a Hugging Face model directory ({@code config.json} + {@code model.safetensors} or a sharded
     * index), with or without the {@code transformer.} prefix, F32/F16/BF16.
     *
     * @throws ModelConfigException       if the config is not a GPT-2 one
     * @throws CheckpointLayoutException  if the tensors do not match the config
     */
    public static Gpt2Model load(Path modelDirectory, LoraAdapterConfig lora, long seed) throws IOException {
        ModelConfig read = ModelConfig.read(modelDirectory.resolve("config.json"));
        if (!(read instanceof Gpt2Config gpt2)) {
            throw new ModelConfigException(modelDirectory.resolve("config.json") + ": model_type \"" + read.modelType()
                    + "\" is not \"" + Gpt2Config.MODEL_TYPE + "\"");
        }
        return new Gpt2Model(gpt2, CheckpointWeights.read(modelDirectory, ModelLayout.of(gpt2)), lora, seed);
    }

    @Override
    public Gpt2Config config() {
        return config;
    }

    @Override
    public ModelLayout layout() {
        return layout;
    }

    @Override
    public LoraAdapterConfig loraConfig() {
        return loraConfig;
    }

    /** The adapted modules with their ranks and alphas, in module order. */
    public List<LoraTarget> loraTargets() {
        return targets;
    }

    @Override
    public Map<String, LoRALinear> adaptedModules() {
        return adapted;
    }

    @Override
    public CausalLanguageModel.Workspace newWorkspace(int batch, int seqLen, boolean gradientCheckpointing) {
        return new Workspace(batch, seqLen, gradientCheckpointing, false);
    }

    @Override
    public CausalLanguageModel.Workspace newForwardWorkspace(int batch, int seqLen) {
        return new Workspace(batch, seqLen, true, true);
    }

    /**
     * Bytes {@link #newForwardWorkspace}({@code batch}, {@code seqLen}) allocates beside the adapters' projections
     * ({@link LoRALinear#forwardActivationBytes}).
     */
    static long forwardWorkspaceBytes(Gpt2Config config, int batch, int seqLen) {
        long rows = (long) batch * seqLen;
        long e = config.hiddenSize();
        // the two residual matrices, the residual after attention, the attention output, ln_f's output and the branch;
        // q, k, v and c_attn's fused output; c_fc's output and the GELU's; the two norms' and ln_f's mean and rstd, the
        // targets and the loss's log-sum-exp; the heads' log-sum-exp; the logits
        long perRow = 6 * e + 6 * e + 2L * config.innerSize() + 8 + config.numHeads() + config.vocabSize();
        return 4 * rows * perRow;
    }

    /**
     * Everything one batch shape needs between and during the passes: the activations the backward
     * reads, per block (or, checkpointing, per {@link BlockCheckpointing#slot}), and scratch shared by all
     * blocks — or, for forward passes alone, the residual stream entering and leaving a block, one block's
     * activations, the logits and the forward's scratch (the gradient buffers are then null). Not thread-safe; one
     * per concurrent batch.
     */
    private final class Workspace implements CausalLanguageModel.Workspace {
        private final int batch;
        private final int seqLen;
        private final int rows;
        /** Holds no backward's buffers: a training forward and a backward refuse it. */
        private final boolean forwardOnly;
        private final BlockCheckpointing checkpointing;
        /** Input of block l (l < n_layer), then of ln_f: [rows, E] each; what checkpointing keeps. */
        private final float[][] residual;
        /** Residual after block l's attention, the input of its ln_2: [rows, E]. */
        private final float[][] attnResidual;
        private final float[][] ln1Mean;
        private final float[][] ln1Rstd;
        private final float[][] ln2Mean;
        private final float[][] ln2Rstd;
        /** q, k, v of block l, each [rows, E] = [B, T, H, D], one after the other. */
        private final float[][] qkv;
        private final float[][] attnLogSumExp;
        /** Attention output of block l when its c_proj is adapted; otherwise all share one scratch. */
        private final float[][] attnOut;
        /** c_fc output of block l, the GELU's input: [rows, inner]. */
        private final float[][] fc;
        private final LoRALinear.Activations[][] moduleActivations;
        private final float[] lnfMean;
        private final float[] lnfRstd;
        private final int[] targets;
        private final float[] lossLogSumExp;
        /** [rows, V]: the logits after a forward, their gradient after a backward. */
        private final float[] logits;
        // Scratch reused by every block, forward and backward.
        /** A LayerNorm's output [rows, E], recomputed in the backward where an adapter reads it. */
        private final float[] normed;
        /** c_attn's output [rows, 3E] in the forward, its gradient in the backward. */
        private final float[] fused;
        /** GELU output [rows, inner], recomputed in the backward when mlp.c_proj is adapted. */
        private final float[] act;
        /** A branch's output [rows, E] before the residual add; the attention output's gradient in the backward. */
        private final float[] branch;
        /** Gradient of the residual stream [rows, E] at the point the backward has reached. */
        private final float[] dResidual;
        /** Gradient of a LayerNorm's output, then of its input [rows, E]. */
        private final float[] dNormed;
        /** Gradient of the GELU's output, then of its input [rows, inner]. */
        private final float[] dAct;
        /** dq, dk, dv [rows, E] each, one after the other, as the attention kernel writes them. */
        private final float[] dHeads;
        private boolean forwardDone;
        private boolean withLoss;
        private int countedTokens;

        private Workspace(int batch, int seqLen, boolean gradientCheckpointing, boolean forwardOnly) {
            if (batch <= 0 || seqLen <= 0) {
                throw new IllegalArgumentException("batch and seqLen must be positive, got " + batch + " × " + seqLen);
            }
            if (seqLen > config.maxPositions()) {
                throw new IllegalArgumentException("seqLen " + seqLen + " exceeds n_positions " + config.maxPositions());
            }
            int e = config.hiddenSize();
            int inner = config.innerSize();
            this.forwardOnly = forwardOnly;
            this.checkpointing = new BlockCheckpointing(config.numLayers(), gradientCheckpointing || forwardOnly);
            int slots = checkpointing.slots();
            this.batch = batch;
            this.seqLen = seqLen;
            this.rows = Math.multiplyExact(batch, seqLen);
            long logitCount = (long) rows * config.vocabSize();
            long fusedCount = 3L * rows * e;
            if (logitCount > Integer.MAX_VALUE - 8 || fusedCount > Integer.MAX_VALUE - 8
                    || (long) rows * inner > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("a batch of " + batch + " × " + seqLen
                        + " tokens is too large for one array; use smaller batches");
            }
            int rowsE = rows * e;
            this.residual = BlockCheckpointing.residualStream(config.numLayers(), rowsE, forwardOnly);
            this.attnResidual = new float[slots][rowsE];
            this.ln1Mean = new float[slots][rows];
            this.ln1Rstd = new float[slots][rows];
            this.ln2Mean = new float[slots][rows];
            this.ln2Rstd = new float[slots][rows];
            this.qkv = new float[slots][3 * rowsE];
            this.attnLogSumExp = new float[slots][batch * config.numHeads() * seqLen];
            this.fc = new float[slots][rows * inner];
            this.attnOut = new float[slots][];
            this.moduleActivations = new LoRALinear.Activations[blocks.length][];
            float[] sharedAttnOut = null;
            for (int slot = 0; slot < slots; slot++) {
                // Checkpointing holds one slot, one array whatever the blocks' adapters.
                if (isAdapted(blocks[slot].modules()[ATTN_PROJ])) {
                    attnOut[slot] = new float[rowsE];
                } else {
                    attnOut[slot] = sharedAttnOut == null ? sharedAttnOut = new float[rowsE] : sharedAttnOut;
                }
            }
            for (int layer = 0; layer < blocks.length; layer++) {
                LoRALinear[] modules = blocks[layer].modules();
                moduleActivations[layer] = new LoRALinear.Activations[modules.length];
                for (int m = 0; m < modules.length; m++) {
                    moduleActivations[layer][m] = forwardOnly ? modules[m].newForwardActivations(rows)
                            : modules[m].newActivations(rows);
                }
            }
            this.lnfMean = new float[rows];
            this.lnfRstd = new float[rows];
            this.targets = new int[rows];
            this.lossLogSumExp = new float[rows];
            this.logits = new float[(int) logitCount];
            this.normed = new float[rowsE];
            this.fused = new float[(int) fusedCount];
            this.act = new float[rows * inner];
            this.branch = new float[rowsE];
            this.dResidual = forwardOnly ? null : new float[rowsE];
            this.dNormed = forwardOnly ? null : new float[rowsE];
            this.dAct = forwardOnly ? null : new float[rows * inner];
            this.dHeads = forwardOnly ? null : new float[(int) fusedCount];
        }

        private Gpt2Model owner() {
            return Gpt2Model.this;
        }

        @Override
        public int batch() {
            return batch;
        }

        @Override
        public int seqLen() {
            return seqLen;
        }

        @Override
        public float[] logits() {
            return logits;
        }

        @Override
        public int countedTokens() {
            return countedTokens;
        }
    }

    /**
     * Runs the model on {@code batch × seqLen} token ids (row-major, position t of every sequence is t),
     * leaving the logits in the workspace and everything the backward needs.
     *
     * @param labels     [batch·seqLen] in Hugging Face's convention — the token at t is predicted from
     *                   positions up to t − 1, so the model shifts them; -100 is ignored — or null for no
     *                   loss
     * @param training   applies the adapters' dropout
     * @param dropoutKey makes a step's dropout masks reproducible: the same key gives the same masks
     * @return the mean cross-entropy over counted tokens (0 when none counts), or NaN without labels
     */
    @Override
    public double forward(CausalLanguageModel.Workspace workspace, int[] inputIds, int[] labels, boolean training,
                          long dropoutKey) {
        Workspace ws = own(workspace);
        if (training && ws.forwardOnly) {
            throw new IllegalArgumentException("a training forward needs a workspace for the backward (newWorkspace), "
                    + "not one for forward passes alone");
        }
        int rows = ws.rows;
        int e = config.hiddenSize();
        int vocab = config.vocabSize();
        if (inputIds.length != rows) {
            throw new IllegalArgumentException("inputIds holds " + inputIds.length + " ids, the workspace is "
                    + ws.batch + " × " + ws.seqLen);
        }
        if (labels != null && labels.length != rows) {
            throw new IllegalArgumentException("labels holds " + labels.length + " ids, the workspace is "
                    + ws.batch + " × " + ws.seqLen);
        }
        ws.forwardDone = false;
        setTargets(ws, labels);
        float[] x0 = ws.residual[0];
        for (int row = 0; row < rows; row++) {
            int id = inputIds[row];
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("input id " + id + " at position " + row + " is outside the vocabulary [0, "
                        + vocab + ")");
            }
            VectorMath.add(wte, id * e, wpe, (row % ws.seqLen) * e, x0, row * e, e);
        }
        ws.checkpointing.forward(training, dropoutKey, (layer, train, key) -> blockForward(ws, layer, train, key));
        float eps = (float) config.layerNormEpsilon();
        Norms.layerNormForward(ws.residual[blocks.length], 0, lnfWeight, 0, lnfBias, 0, ws.normed, 0,
                ws.lnfMean, 0, ws.lnfRstd, 0, rows, e, eps);
        Gemm.sgemm(false, true, rows, vocab, e, 1f, ws.normed, 0, e, wte, 0, e, 0f, ws.logits, 0, vocab);
        ws.forwardDone = true;
        ws.withLoss = labels != null;
        return labels == null ? Double.NaN
                : Softmax.crossEntropyForward(ws.logits, 0, ws.targets, 0, ws.lossLogSumExp, 0, rows, vocab);
    }

    /** The shifted labels as the loss's targets: position t of a sequence predicts label t + 1, its last nothing. */
    private void setTargets(Workspace ws, int[] labels) {
        int vocab = config.vocabSize();
        int counted = 0;
        for (int row = 0; row < ws.rows; row++) {
            int t = row % ws.seqLen;
            int target = labels != null && t + 1 < ws.seqLen ? labels[row + 1] : Softmax.IGNORE_INDEX;
            if (target != Softmax.IGNORE_INDEX && (target < 0 || target >= vocab)) {
                throw new IllegalArgumentException("label " + target + " at position " + (row + 1)
                        + " is neither -100 nor in the vocabulary [0, " + vocab + ")");
            }
            ws.targets[row] = target;
            counted += target == Softmax.IGNORE_INDEX ? 0 : 1;
        }
        ws.countedTokens = counted;
    }

    private void blockForward(Workspace ws, int layer, boolean training, long dropoutKey) {
        Block block = blocks[layer];
        LoRALinear[] modules = block.modules();
        LoRALinear.Activations[] saved = ws.moduleActivations[layer];
        int rows = ws.rows;
        int e = config.hiddenSize();
        int rowsE = rows * e;
        int slot = ws.checkpointing.slot(layer);
        float[] x = ws.residual[layer];
        float[] h = ws.attnResidual[slot];
        float[] qkv = ws.qkv[slot];

        layerNorm1(ws, layer);
        modules[C_ATTN].forward(ws.normed, ws.fused, rows, saved[C_ATTN], training, moduleKey(dropoutKey, layer, C_ATTN));
        // c_attn's row is [q | k | v]; the attention kernel wants each as its own [B, T, H, D] tensor.
        for (int row = 0; row < rows; row++) {
            int from = row * 3 * e;
            System.arraycopy(ws.fused, from, qkv, row * e, e);
            System.arraycopy(ws.fused, from + e, qkv, rowsE + row * e, e);
            System.arraycopy(ws.fused, from + 2 * e, qkv, 2 * rowsE + row * e, e);
        }
        float[] attnOut = ws.attnOut[slot];
        Attention.forward(qkv, 0, qkv, rowsE, qkv, 2 * rowsE, attnOut, 0, ws.attnLogSumExp[slot], 0,
                ws.batch, ws.seqLen, config.numHeads(), config.numHeads(), config.headDim());
        modules[ATTN_PROJ].forward(attnOut, ws.branch, rows, saved[ATTN_PROJ], training, moduleKey(dropoutKey, layer, ATTN_PROJ));
        VectorMath.add(x, 0, ws.branch, 0, h, 0, rowsE);

        layerNorm2(ws, layer);
        float[] fc = ws.fc[slot];
        modules[C_FC].forward(ws.normed, fc, rows, saved[C_FC], training, moduleKey(dropoutKey, layer, C_FC));
        Activations.geluForward(fc, 0, ws.act, 0, fc.length);
        modules[MLP_PROJ].forward(ws.act, ws.branch, rows, saved[MLP_PROJ], training, moduleKey(dropoutKey, layer, MLP_PROJ));
        VectorMath.add(h, 0, ws.branch, 0, ws.residual[layer + 1], 0, rowsE);
    }

    /**
     * Accumulates (+=) the gradient of {@code dLoss ·} the last forward's loss into every adapter's A
     * and B. {@code dLoss} is 1 for a plain step, 1/k when averaging k micro-batches. Overwrites the
     * workspace's logits with their gradient.
     *
     * @throws IllegalStateException if the workspace holds no forward with labels, or the model is merged
     */
    @Override
    public void backward(CausalLanguageModel.Workspace workspace, float dLoss) {
        Workspace ws = own(workspace);
        if (ws.forwardOnly) {
            throw new IllegalStateException("backward on a workspace for forward passes alone; use newWorkspace");
        }
        if (!ws.forwardDone || !ws.withLoss) {
            throw new IllegalStateException("backward needs a forward with labels on this workspace first");
        }
        ws.forwardDone = false;
        int rows = ws.rows;
        int e = config.hiddenSize();
        int vocab = config.vocabSize();
        Softmax.crossEntropyBackward(ws.logits, 0, ws.targets, 0, ws.lossLogSumExp, 0, dLoss, ws.logits, 0, rows, vocab);
        // Tied head: dNormed = dLogits·wte
        Gemm.sgemm(false, false, rows, e, vocab, 1f, ws.logits, 0, vocab, wte, 0, e, 0f, ws.dNormed, 0, e);
        Norms.layerNormBackward(ws.dNormed, 0, ws.residual[blocks.length], 0, lnfWeight, 0, ws.lnfMean, 0, ws.lnfRstd, 0,
                ws.dResidual, 0, null, 0, null, 0, rows, e);
        ws.checkpointing.backward(0, (layer, train, key) -> blockForward(ws, layer, train, key),
                layer -> blockBackward(ws, layer));
    }

    /** From dResidual = ∂loss/∂(block output) to ∂loss/∂(block input), in place. */
    private void blockBackward(Workspace ws, int layer) {
        Block block = blocks[layer];
        LoRALinear[] modules = block.modules();
        LoRALinear.Activations[] saved = ws.moduleActivations[layer];
        int rows = ws.rows;
        int e = config.hiddenSize();
        int rowsE = rows * e;
        int slot = ws.checkpointing.slot(layer);
        float[] x = ws.residual[layer];
        float[] h = ws.attnResidual[slot];
        float[] fc = ws.fc[slot];
        float[] qkv = ws.qkv[slot];

        // MLP branch: the residual passes dResidual to it unchanged.
        if (isAdapted(modules[MLP_PROJ])) {
            Activations.geluForward(fc, 0, ws.act, 0, fc.length);
        }
        modules[MLP_PROJ].backward(ws.act, ws.dResidual, ws.dAct, rows, saved[MLP_PROJ], false);
        Activations.geluBackward(ws.dAct, 0, fc, 0, ws.dAct, 0, fc.length);
        if (isAdapted(modules[C_FC])) {
            layerNorm2(ws, layer);
        }
        modules[C_FC].backward(ws.normed, ws.dAct, ws.dNormed, rows, saved[C_FC], false);
        Norms.layerNormBackward(ws.dNormed, 0, h, 0, block.ln2Weight(), 0, ws.ln2Mean[slot], 0, ws.ln2Rstd[slot], 0,
                ws.dNormed, 0, null, 0, null, 0, rows, e);
        VectorMath.addInPlace(ws.dNormed, 0, ws.dResidual, 0, rowsE);

        // Attention branch.
        modules[ATTN_PROJ].backward(ws.attnOut[slot], ws.dResidual, ws.branch, rows, saved[ATTN_PROJ], false);
        Attention.backward(ws.branch, 0, qkv, 0, qkv, rowsE, qkv, 2 * rowsE, ws.attnLogSumExp[slot], 0,
                ws.dHeads, 0, ws.dHeads, rowsE, ws.dHeads, 2 * rowsE,
                ws.batch, ws.seqLen, config.numHeads(), config.numHeads(), config.headDim());
        for (int row = 0; row < rows; row++) {
            int to = row * 3 * e;
            System.arraycopy(ws.dHeads, row * e, ws.fused, to, e);
            System.arraycopy(ws.dHeads, rowsE + row * e, ws.fused, to + e, e);
            System.arraycopy(ws.dHeads, 2 * rowsE + row * e, ws.fused, to + 2 * e, e);
        }
        if (isAdapted(modules[C_ATTN])) {
            layerNorm1(ws, layer);
        }
        modules[C_ATTN].backward(ws.normed, ws.fused, ws.dNormed, rows, saved[C_ATTN], false);
        Norms.layerNormBackward(ws.dNormed, 0, x, 0, block.ln1Weight(), 0, ws.ln1Mean[slot], 0, ws.ln1Rstd[slot], 0,
                ws.dNormed, 0, null, 0, null, 0, rows, e);
        VectorMath.addInPlace(ws.dNormed, 0, ws.dResidual, 0, rowsE);
    }

    /** ln_1 of block l into the normed scratch, saving its statistics: in the forward, and again where the backward needs it. */
    private void layerNorm1(Workspace ws, int layer) {
        Block block = blocks[layer];
        int slot = ws.checkpointing.slot(layer);
        Norms.layerNormForward(ws.residual[layer], 0, block.ln1Weight(), 0, block.ln1Bias(), 0, ws.normed, 0,
                ws.ln1Mean[slot], 0, ws.ln1Rstd[slot], 0, ws.rows, config.hiddenSize(), (float) config.layerNormEpsilon());
    }

    /** ln_2 of block l, as {@link #layerNorm1}. */
    private void layerNorm2(Workspace ws, int layer) {
        Block block = blocks[layer];
        int slot = ws.checkpointing.slot(layer);
        Norms.layerNormForward(ws.attnResidual[slot], 0, block.ln2Weight(), 0, block.ln2Bias(), 0, ws.normed, 0,
                ws.ln2Mean[slot], 0, ws.ln2Rstd[slot], 0, ws.rows, config.hiddenSize(), (float) config.layerNormEpsilon());
    }

    /**
     * Logits [batch·seqLen, vocab] of one batch, without dropout, in a fresh workspace: a convenience
     * for tests and one-off inference, not for loops.
     */
    public float[] logits(int[] inputIds, int batch, int seqLen) {
        CausalLanguageModel.Workspace ws = newWorkspace(batch, seqLen);
        forward(ws, inputIds, null, false, 0);
        return ws.logits();
    }

    /**
     * A module reads its forward input in the backward only for A's gradient: an unadapted one (rank 0)
     * computes dx = dy·W0 alone. So only an adapted module's input is kept or recomputed.
     */
    private static boolean isAdapted(LoRALinear module) {
        return module.spec().rank() > 0;
    }

    private static long moduleKey(long dropoutKey, int layer, int module) {
        return Rng.hash(dropoutKey, (long) layer * MODULES.length + module);
    }

    private Workspace own(CausalLanguageModel.Workspace workspace) {
        if (!(workspace instanceof Workspace ws) || ws.owner() != this) {
            throw new IllegalArgumentException("the workspace belongs to another model");
        }
        return ws;
    }

    // ---------------------------------------------------------------- generation

    /** The keys and values of one sequence, and the scratch of up to {@code chunkRows} new tokens. */
    private final class KvCache extends AbstractKvCache {
        /** [rows, E]: the new tokens' residual stream, updated in place block after block. */
        private final float[] residual;
        /** [rows, E]: a LayerNorm's output. */
        private final float[] normed;
        /** [rows]: a LayerNorm's statistics, not read again. */
        private final float[] mean;
        private final float[] rstd;
        /** [rows, 3E]: c_attn's [q | k | v]. */
        private final float[] fused;
        /** [rows, E]. */
        private final float[] attnOut;
        /** [rows, E]: a block's attention or MLP output before it joins the residual. */
        private final float[] branch;
        /** [rows, inner]: c_fc's output, then its GELU. */
        private final float[] fc;
        private final float[] act;
        /** [layers][module]: the LoRA branch's scratch. */
        private final LoRALinear.Activations[][] moduleActivations;

        private KvCache(int capacity) {
            super(config, config.numHeads(), capacity);
            int e = config.hiddenSize();
            int inner = config.innerSize();
            this.residual = new float[chunkRows * e];
            this.normed = new float[chunkRows * e];
            this.mean = new float[chunkRows];
            this.rstd = new float[chunkRows];
            this.fused = new float[3 * chunkRows * e];
            this.attnOut = new float[chunkRows * e];
            this.branch = new float[chunkRows * e];
            this.fc = new float[chunkRows * inner];
            this.act = new float[chunkRows * inner];
            this.moduleActivations = new LoRALinear.Activations[blocks.length][];
            for (int layer = 0; layer < blocks.length; layer++) {
                LoRALinear[] modules = blocks[layer].modules();
                moduleActivations[layer] = new LoRALinear.Activations[modules.length];
                for (int m = 0; m < modules.length; m++) {
                    moduleActivations[layer][m] = modules[m].newForwardActivations(chunkRows);
                }
            }
        }

        private Gpt2Model owner() {
            return Gpt2Model.this;
        }
    }

    /** Bytes {@link #newKvCache}({@code capacity}) allocates, adapters' scratch aside: the fields of {@link KvCache}. */
    static long kvCacheBytes(Gpt2Config config, int capacity) {
        long rows = AbstractKvCache.chunkRows(capacity);
        long e = config.hiddenSize();
        // residual, normed, attnOut and branch; mean and rstd; fused; fc and act
        long perRow = 4 * e + 2 + 3 * e + 2L * config.innerSize();
        return AbstractKvCache.bytes(config, config.numHeads(), capacity) + 4 * rows * perRow;
    }

    /** A cache of up to {@code capacity} ≤ n_positions tokens. */
    @Override
    public CausalLanguageModel.KvCache newKvCache(int capacity) {
        return new KvCache(capacity);
    }

    @Override
    public float[] decode(CausalLanguageModel.KvCache kvCache, int[] tokens) {
        KvCache cache = own(kvCache);
        cache.checkAppend(tokens, config.vocabSize());
        int e = config.hiddenSize();
        int vocab = config.vocabSize();
        int rows = 0;
        for (int first = 0; first < tokens.length; first += rows) {
            rows = Math.min(cache.chunkRows, tokens.length - first);
            decodeChunk(cache, tokens, first, rows);
        }
        // Only the last token's logits are asked for.
        Norms.layerNormForward(cache.residual, (rows - 1) * e, lnfWeight, 0, lnfBias, 0, cache.normed, 0,
                cache.mean, 0, cache.rstd, 0, 1, e, (float) config.layerNormEpsilon());
        Gemm.sgemm(false, true, 1, vocab, e, 1f, cache.normed, 0, e, wte, 0, e, 0f, cache.logits, 0, vocab);
        return cache.logits;
    }

    /** Runs tokens [first, first + rows) through the blocks at positions length.., appending their keys and values. */
    private void decodeChunk(KvCache cache, int[] tokens, int first, int rows) {
        int e = config.hiddenSize();
        int past = cache.length;
        float eps = (float) config.layerNormEpsilon();
        float[] x = cache.residual;
        for (int row = 0; row < rows; row++) {
            VectorMath.add(wte, tokens[first + row] * e, wpe, (past + row) * e, x, row * e, e);
        }
        for (int layer = 0; layer < blocks.length; layer++) {
            Block block = blocks[layer];
            LoRALinear[] modules = block.modules();
            LoRALinear.Activations[] scratch = cache.moduleActivations[layer];
            Norms.layerNormForward(x, 0, block.ln1Weight(), 0, block.ln1Bias(), 0, cache.normed, 0,
                    cache.mean, 0, cache.rstd, 0, rows, e, eps);
            modules[C_ATTN].forward(cache.normed, cache.fused, rows, scratch[C_ATTN], false, 0);
            // Each fused row is [q | k | v]: the kernel reads q, k and v in place with a row stride of 3E.
            CachedAttention.append(cache.fused, e, cache.fused, 2 * e, 3 * e, rows, cache.keys[layer],
                    cache.values[layer], cache.capacity, past, config.numHeads(), config.headDim());
            CachedAttention.forward(cache.fused, 0, 3 * e, rows, cache.keys[layer], cache.values[layer],
                    cache.capacity, past, cache.attnOut, 0, config.numHeads(), config.numHeads(), config.headDim(),
                    cache.scores);
            modules[ATTN_PROJ].forward(cache.attnOut, cache.branch, rows, scratch[ATTN_PROJ], false, 0);
            VectorMath.addInPlace(cache.branch, 0, x, 0, rows * e);

            Norms.layerNormForward(x, 0, block.ln2Weight(), 0, block.ln2Bias(), 0, cache.normed, 0,
                    cache.mean, 0, cache.rstd, 0, rows, e, eps);
            modules[C_FC].forward(cache.normed, cache.fc, rows, scratch[C_FC], false, 0);
            Activations.geluForward(cache.fc, 0, cache.act, 0, rows * config.innerSize());
            modules[MLP_PROJ].forward(cache.act, cache.branch, rows, scratch[MLP_PROJ], false, 0);
            VectorMath.addInPlace(cache.branch, 0, x, 0, rows * e);
        }
        cache.length = past + rows;
    }

    private KvCache own(CausalLanguageModel.KvCache kvCache) {
        if (!(Objects.requireNonNull(kvCache, "cache") instanceof KvCache cache) || cache.owner() != this) {
            throw new IllegalArgumentException("the KV cache belongs to another model");
        }
        return cache;
    }
}
