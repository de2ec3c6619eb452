package dev.loraflow.core.model;

import dev.loraflow.core.kernels.Activations;
import dev.loraflow.core.kernels.Attention;
import dev.loraflow.core.kernels.CachedAttention;
import dev.loraflow.core.kernels.Norms;
import dev.loraflow.core.kernels.Rope;
import dev.loraflow.core.kernels.RopeTable;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.kernels.VectorMath;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.lora.LoraSpec;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;

/**
 * A Llama causal language model ({@code LlamaForCausalLM}) with frozen base weights and LoRA adapters
 * on chosen linear modules, float32 throughout.
 *
 * <p>Each block computes x += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))) with
 * n = RMSNorm(x)·input_layernorm, then x += down_proj(silu(gate_proj(m)) ⊙ up_proj(m)) with
 * m = RMSNorm(x)·post_attention_layernorm; the logits are model.norm(x)·lm_headᵀ, or ·embed_tokensᵀ
 * when the embeddings are tied. Every linear module is a {@link LoRALinear}, of rank 0 where it has
 * no adapter, so that all of them run through the same kernels.
 */
public final class LlamaModel implements CausalLanguageModel {

    private final LlamaConfig config;
    private final ModelLayout layout;
    /** [V, H]. */
    private final float[] tokenEmbedding;
    private final List<Block> blocks;
    /** [H]. */
    private final float[] finalNormWeight;
    /** Reads [N, H], writes the logits [N, V]. */
    private final LoRALinear outputHead;
    private final RopeTable ropeTable;
    private final float rmsNormEps;
    /** In {@link ModelLayout#linearModules()} order, which is also the order of dropout keys and A's seeds. */
    private final List<LoRALinear> linearModules;
    /** Each linear module's index in {@link #linearModules}: its dropout key and its workspace slot. */
    private final Map<LoRALinear, Integer> moduleIndex;
    /**
     * The lowest block with an adapter (L when only the head has one): the backward stops there,
     * since no gradient below it reaches a trainable parameter.
     */
    private final int firstAdaptedBlock;
    private final LoraAdapterConfig loraConfig;
    /** PEFT module path → linear module, for the adapted ones (rank > 0), in module order. */
    private final Map<String, LoRALinear> adaptedModules;

    private record Block(
            /* [H] */ float[] inputNormWeight,
            /* [H] */ float[] postAttentionNormWeight,
            LoRALinear queryProjection,
            LoRALinear keyProjection,
            LoRALinear valueProjection,
            LoRALinear outputProjection,
            LoRALinear gateProjection,
            LoRALinear upProjection,
            LoRALinear downProjection) {

        List<LoRALinear> linears() {
            return List.of(queryProjection, keyProjection, valueProjection, outputProjection,
                    gateProjection, upProjection, downProjection);
        }
    }

    /**
     * @param weights     every tensor of {@code ModelLayout.of(config)} under its canonical name, flattened
     *                    row-major; used as given (not copied) and never written
     * @param loraTargets the adapted modules, e.g. from {@link LoraTargets#select}; every other linear
     *                    module is plain
     * @param loraDropout dropout on the input of every LoRA branch, in [0, 1)
     * @param seed        seeds A's initialisation, each module from its own hash of it
     * @throws IllegalArgumentException naming the tensor or module when a weight is missing, unexpected
     *                                  or of the wrong size, or a target is not a linear module of the model
     */
    LlamaModel(LlamaConfig config, Map<String, float[]> weights, List<LoraTarget> loraTargets, float loraDropout,
               long seed) {
        this(config, weights, null, loraTargets, loraDropout, seed);
    }

    /**
     * @param weights every tensor of {@code ModelLayout.of(config)} under its canonical name, flattened
     *                row-major; used as given (not copied) and never written
     * @param lora    which modules get adapters, by PEFT's rules; null for none
     * @param seed    seeds A's initialisation, each module from its own hash of it
     * @throws IllegalArgumentException naming the tensor when a weight is missing, unexpected or of the
     *                                  wrong size, or if the config asks for trainable biases
     */
    public LlamaModel(LlamaConfig config, Map<String, float[]> weights, LoraAdapterConfig lora, long seed) {
        this(config, weights, lora, lora == null ? List.of() : LoraTargets.select(ModelLayout.of(config), lora),
                lora == null ? 0f : (float) lora.loraDropout(), seed);
        if (lora != null && lora.bias() != LoraAdapterConfig.Bias.NONE) {
            throw new IllegalArgumentException("LoRA bias \"" + lora.bias().json()
                    + "\" (trainable biases) is not supported; use \"none\"");
        }
    }

    private LlamaModel(LlamaConfig config, Map<String, float[]> weights, LoraAdapterConfig lora,
                       List<LoraTarget> loraTargets, float loraDropout, long seed) {
        this.config = Objects.requireNonNull(config, "config");
        this.loraConfig = lora;
        this.layout = ModelLayout.of(config);
        checkWeights(layout, weights);
        Map<String, LoraSpec> specs = loraSpecs(layout, loraTargets, loraDropout);

        this.tokenEmbedding = weights.get("model.embed_tokens.weight");
        this.finalNormWeight = weights.get("model.norm.weight");
        this.rmsNormEps = (float) config.rmsNormEps();
        this.ropeTable = RopeTable.create(config.maxPositions(), config.headDim(), config.ropeTheta());

        Map<String, LoRALinear> linearsByPath = new LinkedHashMap<>();
        List<LinearModule> modules = layout.linearModules();
        for (int index = 0; index < modules.size(); index++) {
            LinearModule module = modules.get(index);
            float[] weight = module.outputLayer() && config.tieWordEmbeddings()
                    ? tokenEmbedding
                    : weights.get(module.path() + ".weight");
            LoraSpec spec = specs.getOrDefault(module.path(), new LoraSpec(0, 0f, 0f, false));
            linearsByPath.put(module.path(), new LoRALinear(layout.peftModulePath(module.path()), module.in(),
                    module.out(), weight, null, module.fanInFanOut(), spec, Rng.hash(seed, index)));
        }
        this.linearModules = List.copyOf(linearsByPath.values());
        this.moduleIndex = new IdentityHashMap<>();
        for (int index = 0; index < linearModules.size(); index++) {
            moduleIndex.put(linearModules.get(index), index);
        }
        this.outputHead = linearsByPath.get(ModelLayout.OUTPUT_HEAD);

        List<Block> built = new ArrayList<>();
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            built.add(new Block(
                    weights.get(prefix + "input_layernorm.weight"),
                    weights.get(prefix + "post_attention_layernorm.weight"),
                    linearsByPath.get(prefix + "self_attn.q_proj"),
                    linearsByPath.get(prefix + "self_attn.k_proj"),
                    linearsByPath.get(prefix + "self_attn.v_proj"),
                    linearsByPath.get(prefix + "self_attn.o_proj"),
                    linearsByPath.get(prefix + "mlp.gate_proj"),
                    linearsByPath.get(prefix + "mlp.up_proj"),
                    linearsByPath.get(prefix + "mlp.down_proj")));
        }
        this.blocks = List.copyOf(built);
        this.firstAdaptedBlock = lowestAdaptedBlock(blocks);

        Map<String, LoRALinear> adapted = new LinkedHashMap<>();
        linearModules.stream().filter(linear -> linear.spec().rank() > 0)
                .forEach(linear -> adapted.put(linear.name(), linear));
        this.adaptedModules = Collections.unmodifiableMap(adapted);
    }

    /**
     * Loads a Hugging Face model directory ({@code config.json} + {@code model.safetensors} or a sharded
     * index), F32/F16/BF16.
     *
     * @throws ModelConfigException      if the config is not a Llama one
     * @throws CheckpointLayoutException if the tensors do not match the config
     */
    public static LlamaModel load(Path modelDirectory, LoraAdapterConfig lora, long seed) throws IOException {
        ModelConfig read = ModelConfig.read(modelDirectory.resolve("config.json"));
        if (!(read instanceof LlamaConfig llama)) {
            throw new ModelConfigException(modelDirectory.resolve("config.json") + ": model_type \"" + read.modelType()
                    + "\" is not \"" + LlamaConfig.MODEL_TYPE + "\"");
        }
        return new LlamaModel(llama, CheckpointWeights.read(modelDirectory, ModelLayout.of(llama)), lora, seed);
    }

    private static int lowestAdaptedBlock(List<Block> blocks) {
        for (int layer = 0; layer < blocks.size(); layer++) {
            if (blocks.get(layer).linears().stream().anyMatch(linear -> linear.spec().rank() > 0)) {
                return layer;
            }
        }
        return blocks.size();
    }

    private static void checkWeights(ModelLayout layout, Map<String, float[]> weights) {
        Objects.requireNonNull(weights, "weights");
        for (WeightSpec spec : layout.weights()) {
            float[] value = weights.get(spec.name());
            if (value == null) {
                throw new IllegalArgumentException("missing weight " + spec.name() + " " + Arrays.toString(spec.shape()));
            }
            if (value.length != spec.numel()) {
                throw new IllegalArgumentException("weight " + spec.name() + " has " + value.length
                        + " elements, expected " + Arrays.toString(spec.shape()) + " = " + spec.numel());
            }
        }
        for (String name : weights.keySet()) {
            if (layout.weight(name) == null && !layout.isIgnorable(name)) {
                throw new IllegalArgumentException("unexpected weight " + name + " for a " + layout.config().modelType()
                        + " model with this configuration");
            }
        }
    }

    /** The LoraSpec of each adapted module, by canonical path. */
    private static Map<String, LoraSpec> loraSpecs(ModelLayout layout, List<LoraTarget> targets, float dropout) {
        Map<String, LinearModule> modulesByPath = new HashMap<>();
        layout.linearModules().forEach(module -> modulesByPath.put(module.path(), module));
        Map<String, LoraSpec> specs = new HashMap<>();
        for (LoraTarget target : targets) {
            String path = layout.canonicalModulePath(target.modulePath());
            LinearModule module = modulesByPath.get(path);
            if (module == null) {
                throw new IllegalArgumentException("LoRA target " + target.modulePath() + " is not a linear module of the model");
            }
            if (module.in() != target.in() || module.out() != target.out()) {
                throw new IllegalArgumentException("LoRA target " + target.modulePath() + " is " + target.in() + " → "
                        + target.out() + ", the module is " + module.in() + " → " + module.out());
            }
            if (specs.put(path, loraSpec(target, dropout)) != null) {
                throw new IllegalArgumentException("LoRA target " + target.modulePath() + " given twice");
            }
        }
        return specs;
    }

    /** LoraSpec derives the scaling from alpha and rank, so recover which of PEFT's two rules the target used. */
    private static LoraSpec loraSpec(LoraTarget target, float dropout) {
        int rank = target.rank();
        if (rank == 0) {
            return new LoraSpec(0, (float) target.alpha(), dropout, false);
        }
        double plain = target.alpha() / rank;
        double rankStabilised = target.alpha() / Math.sqrt(rank);
        boolean useRslora = Math.abs(target.scaling() - rankStabilised) < Math.abs(target.scaling() - plain);
        LoraSpec spec = new LoraSpec(rank, (float) target.alpha(), dropout, useRslora);
        if (Math.abs(spec.scaling() - target.scaling()) > 1e-6 * Math.max(1, Math.abs(target.scaling()))) {
            throw new IllegalArgumentException("LoRA target " + target.modulePath() + ": scaling " + target.scaling()
                    + " is neither alpha/r nor alpha/√r for alpha " + target.alpha() + ", r " + rank);
        }
        return spec;
    }

    /**
     * The activations of one batch shape: everything the forward saves for the backward, the logits,
     * and the backward's scratch, allocated once so that a training step allocates nothing.
     */
    private final class Workspace implements CausalLanguageModel.Workspace {
        private final int batch;
        private final int seqLen;
        /** N = batch·seqLen, the rows every projection works on. */
        private final int rows;
        /** [N], 0..T−1 within each sequence. */
        private final int[] positions;
        /** [N], the forward's targets, which the loss gradient needs. */
        private final int[] targets;
        /** [L + 1][N, H]: residual stream entering each block, and leaving the last. */
        private final float[][] residual;
        /** [L][N, H]: residual stream after each block's attention, the input of its second norm. */
        private final float[][] residualAfterAttention;
        /** [L][N]: 1/rms of each row in the input norm. */
        private final float[][] inputNormRstd;
        /** [L][N, H]: n, the input of q/k/v_proj; one shared matrix where none of them is adapted. */
        private final float[][] attentionInput;
        /** [L][N, heads·D]: q after RoPE. */
        private final float[][] query;
        /** [L][N, kv·D]: k after RoPE. */
        private final float[][] key;
        /** [L][N, kv·D]. */
        private final float[][] value;
        /** [L][B, heads, T]: the attention's log-sum-exp per score row. */
        private final float[][] attentionLogSumExp;
        /** [L][N, heads·D]: attention output, the input of o_proj; shared where o_proj is not adapted. */
        private final float[][] attentionOutput;
        /** [L][N]: 1/rms of each row in the post-attention norm. */
        private final float[][] mlpNormRstd;
        /** [L][N, H]: m, the input of gate/up_proj; shared where neither is adapted. */
        private final float[][] mlpInput;
        /** [L][N, I]: gate_proj's output; the backward overwrites it with its gradient. */
        private final float[][] gate;
        /** [L][N, I]: up_proj's output; the backward overwrites it with its gradient. */
        private final float[][] up;
        /** [L][N, I]: silu(gate) ⊙ up, the input of down_proj; shared where down_proj is not adapted. */
        private final float[][] gated;
        /** [N]: 1/rms of each row in the final norm. */
        private final float[] finalNormRstd;
        /** [N, H]: the final norm's output, the input of the output head. */
        private final float[] finalNormOutput;
        /** [N, V]: the logits; the backward overwrites them with their gradient. */
        private final float[] logits;
        /** [N]: log-sum-exp of each logits row, for the loss gradient. */
        private final float[] lossLogSumExp;
        /** Saved LoRA quantities, one per linear module in {@link #linearModules} order. */
        private final List<LoRALinear.Activations> linearActivations;
        /** [N, H]: o_proj and down_proj outputs in the forward; the residual stream's gradient in the backward. */
        private final float[] hiddenScratch;
        /** [N, H]: gradient of a norm's output, then (in place) of its input. */
        private final float[] normGrad;
        /** [N, heads·D]: gradient of the attention output. */
        private final float[] attentionOutputGrad;
        /** [N, heads·D]. */
        private final float[] queryGrad;
        /** [N, kv·D]. */
        private final float[] keyGrad;
        /** [N, kv·D]. */
        private final float[] valueGrad;
        /** [N, I]: gradient of silu(gate) ⊙ up. */
        private final float[] gatedGrad;
        private boolean forwardDone;
        private boolean withLoss;
        private int countedTokens;

        private Workspace(int batch, int seqLen) {
            this.batch = batch;
            this.seqLen = seqLen;
            this.rows = Math.multiplyExact(batch, seqLen);
            int hidden = config.hiddenSize();
            int queryWidth = config.numHeads() * config.headDim();
            int keyValueWidth = config.numKeyValueHeads() * config.headDim();
            int inner = config.intermediateSize();
            int layers = config.numLayers();
            this.positions = new int[rows];
            for (int row = 0; row < rows; row++) {
                positions[row] = row % seqLen;
            }
            this.targets = new int[rows];
            this.residual = matrices(layers + 1, rows, hidden);
            this.residualAfterAttention = matrices(layers, rows, hidden);
            this.inputNormRstd = matrices(layers, rows, 1);
            this.attentionInput = savedWhereAdapted(rows, hidden, Block::queryProjection, Block::keyProjection,
                    Block::valueProjection);
            this.query = matrices(layers, rows, queryWidth);
            this.key = matrices(layers, rows, keyValueWidth);
            this.value = matrices(layers, rows, keyValueWidth);
            this.attentionLogSumExp = matrices(layers, rows, config.numHeads());
            this.attentionOutput = savedWhereAdapted(rows, queryWidth, Block::outputProjection);
            this.mlpNormRstd = matrices(layers, rows, 1);
            this.mlpInput = savedWhereAdapted(rows, hidden, Block::gateProjection, Block::upProjection);
            this.gate = matrices(layers, rows, inner);
            this.up = matrices(layers, rows, inner);
            this.gated = savedWhereAdapted(rows, inner, Block::downProjection);
            this.finalNormRstd = new float[rows];
            this.finalNormOutput = new float[Math.multiplyExact(rows, hidden)];
            this.logits = new float[Math.multiplyExact(rows, config.vocabSize())];
            this.lossLogSumExp = new float[rows];
            this.linearActivations = linearModules.stream().map(linear -> linear.newActivations(rows)).toList();
            this.hiddenScratch = new float[rows * hidden];
            this.normGrad = new float[rows * hidden];
            this.attentionOutputGrad = new float[rows * queryWidth];
            this.queryGrad = new float[rows * queryWidth];
            this.keyGrad = new float[rows * keyValueWidth];
            this.valueGrad = new float[rows * keyValueWidth];
            this.gatedGrad = new float[rows * inner];
        }

        /**
         * One [rows, cols] matrix per block holding the input of the given linear modules. Only an
         * adapter's backward reads its input, so blocks where none of them is adapted share one
         * scratch matrix instead.
         */
        @SafeVarargs
        private float[][] savedWhereAdapted(int rows, int cols, Function<Block, LoRALinear>... readers) {
            float[] shared = null;
            float[][] matrices = new float[blocks.size()][];
            for (int layer = 0; layer < blocks.size(); layer++) {
                Block block = blocks.get(layer);
                boolean adapted = Arrays.stream(readers).anyMatch(reader -> reader.apply(block).spec().rank() > 0);
                if (adapted) {
                    matrices[layer] = new float[Math.multiplyExact(rows, cols)];
                } else {
                    shared = shared != null ? shared : new float[Math.multiplyExact(rows, cols)];
                    matrices[layer] = shared;
                }
            }
            return matrices;
        }

        private static float[][] matrices(int count, int rows, int cols) {
            float[][] matrices = new float[count][];
            for (int i = 0; i < count; i++) {
                matrices[i] = new float[Math.multiplyExact(rows, cols)];
            }
            return matrices;
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

        private LlamaModel owner() {
            return LlamaModel.this;
        }
    }

    /**
     * Activations for batches of {@code batch} sequences of {@code seqLen} tokens.
     *
     * @throws IllegalArgumentException if a size is not positive or seqLen exceeds max_position_embeddings
     */
    @Override
    public CausalLanguageModel.Workspace newWorkspace(int batch, int seqLen) {
        if (batch <= 0 || seqLen <= 0) {
            throw new IllegalArgumentException("batch and seqLen must be positive, got " + batch + " and " + seqLen);
        }
        if (seqLen > config.maxPositions()) {
            throw new IllegalArgumentException("seqLen " + seqLen + " exceeds the context of max_position_embeddings "
                    + config.maxPositions());
        }
        return new Workspace(batch, seqLen);
    }

    @Override
    public double forward(CausalLanguageModel.Workspace workspace, int[] inputIds, int[] labels, boolean training,
                          long dropoutKey) {
        Workspace ws = own(workspace);
        int[] targets = new int[ws.rows];
        if (labels != null) {
            checkIds(labels, ws.rows, "label", true);
        }
        for (int row = 0; row < ws.rows; row++) {
            int t = row % ws.seqLen;
            targets[row] = labels != null && t + 1 < ws.seqLen ? labels[row + 1] : Softmax.IGNORE_INDEX;
        }
        double loss = forwardWithTargets(inputIds, targets, ws, training, dropoutKey);
        ws.withLoss = labels != null;
        return labels == null ? Double.NaN : loss;
    }

    /**
     * {@link #forward} with the targets already shifted: {@code targets[row]} is the token position
     * {@code row} predicts, or −100.
     */
    double forwardWithTargets(int[] tokens, int[] targets, CausalLanguageModel.Workspace workspace, boolean training,
                              long dropoutKey) {
        Workspace ws = own(workspace);
        checkIds(tokens, ws.rows, "token", false);
        checkIds(targets, ws.rows, "target", true);
        ws.forwardDone = false;
        System.arraycopy(targets, 0, ws.targets, 0, ws.rows);
        int counted = 0;
        for (int target : targets) {
            counted += target == Softmax.IGNORE_INDEX ? 0 : 1;
        }
        ws.countedTokens = counted;

        int rows = ws.rows;
        int hidden = config.hiddenSize();
        for (int row = 0; row < rows; row++) {
            System.arraycopy(tokenEmbedding, tokens[row] * hidden, ws.residual[0], row * hidden, hidden);
        }
        for (int layer = 0; layer < blocks.size(); layer++) {
            forwardBlock(layer, ws, training, dropoutKey);
        }
        Norms.rmsNormForward(ws.residual[blocks.size()], 0, finalNormWeight, 0, ws.finalNormOutput, 0,
                ws.finalNormRstd, 0, rows, hidden, rmsNormEps);
        linearForward(outputHead, ws.finalNormOutput, ws.logits, ws, training, dropoutKey);
        double loss = Softmax.crossEntropyForward(ws.logits, 0, ws.targets, 0, ws.lossLogSumExp, 0, rows,
                config.vocabSize());
        ws.forwardDone = true;
        ws.withLoss = true;
        return loss;
    }

    private void forwardBlock(int layer, Workspace ws, boolean training, long dropoutKey) {
        Block block = blocks.get(layer);
        int rows = ws.rows;
        int hidden = config.hiddenSize();
        float[] x = ws.residual[layer];
        float[] attentionInput = ws.attentionInput[layer];
        float[] query = ws.query[layer];
        float[] key = ws.key[layer];

        Norms.rmsNormForward(x, 0, block.inputNormWeight(), 0, attentionInput, 0, ws.inputNormRstd[layer], 0,
                rows, hidden, rmsNormEps);
        linearForward(block.queryProjection(), attentionInput, query, ws, training, dropoutKey);
        linearForward(block.keyProjection(), attentionInput, key, ws, training, dropoutKey);
        linearForward(block.valueProjection(), attentionInput, ws.value[layer], ws, training, dropoutKey);
        Rope.forward(query, 0, ws.positions, 0, ropeTable, query, 0, ws.batch, ws.seqLen, config.numHeads());
        Rope.forward(key, 0, ws.positions, 0, ropeTable, key, 0, ws.batch, ws.seqLen, config.numKeyValueHeads());
        Attention.forward(query, 0, key, 0, ws.value[layer], 0, ws.attentionOutput[layer], 0,
                ws.attentionLogSumExp[layer], 0, ws.batch, ws.seqLen, config.numHeads(), config.numKeyValueHeads(),
                config.headDim());
        linearForward(block.outputProjection(), ws.attentionOutput[layer], ws.hiddenScratch, ws, training, dropoutKey);
        float[] afterAttention = ws.residualAfterAttention[layer];
        VectorMath.add(x, 0, ws.hiddenScratch, 0, afterAttention, 0, rows * hidden);

        float[] mlpInput = ws.mlpInput[layer];
        Norms.rmsNormForward(afterAttention, 0, block.postAttentionNormWeight(), 0, mlpInput, 0,
                ws.mlpNormRstd[layer], 0, rows, hidden, rmsNormEps);
        linearForward(block.gateProjection(), mlpInput, ws.gate[layer], ws, training, dropoutKey);
        linearForward(block.upProjection(), mlpInput, ws.up[layer], ws, training, dropoutKey);
        Activations.swigluForward(ws.gate[layer], 0, ws.up[layer], 0, ws.gated[layer], 0,
                rows * config.intermediateSize());
        linearForward(block.downProjection(), ws.gated[layer], ws.hiddenScratch, ws, training, dropoutKey);
        VectorMath.add(afterAttention, 0, ws.hiddenScratch, 0, ws.residual[layer + 1], 0, rows * hidden);
    }

    @Override
    public void backward(CausalLanguageModel.Workspace workspace, float dLoss) {
        Workspace ws = own(workspace);
        if (!ws.forwardDone || !ws.withLoss) {
            throw new IllegalStateException("backward needs a forward with labels on this workspace first (once per forward)");
        }
        ws.forwardDone = false;
        int rows = ws.rows;
        int hidden = config.hiddenSize();
        float[] logitsGrad = ws.logits;
        Softmax.crossEntropyBackward(ws.logits, 0, ws.targets, 0, ws.lossLogSumExp, 0, dLoss, logitsGrad, 0, rows,
                config.vocabSize());
        linearBackward(outputHead, ws.finalNormOutput, logitsGrad, ws.normGrad, ws, false);
        float[] residualGrad = ws.hiddenScratch;
        Norms.rmsNormBackward(ws.normGrad, 0, ws.residual[blocks.size()], 0, finalNormWeight, 0, ws.finalNormRstd, 0,
                residualGrad, 0, null, 0, rows, hidden);
        for (int layer = blocks.size() - 1; layer >= firstAdaptedBlock; layer--) {
            backwardBlock(layer, ws, residualGrad);
        }
    }

    /** Turns residualGrad, the gradient of the block's output, into that of its input. */
    private void backwardBlock(int layer, Workspace ws, float[] residualGrad) {
        Block block = blocks.get(layer);
        int rows = ws.rows;
        int hidden = config.hiddenSize();

        // The MLP branch: x_out = x_mid + down(swiglu(gate(m), up(m))).
        linearBackward(block.downProjection(), ws.gated[layer], residualGrad, ws.gatedGrad, ws, false);
        // In place: gate and up are not read again after their gradients are formed.
        float[] gateGrad = ws.gate[layer];
        float[] upGrad = ws.up[layer];
        Activations.swigluBackward(ws.gatedGrad, 0, ws.gate[layer], 0, ws.up[layer], 0, gateGrad, 0, upGrad, 0,
                rows * config.intermediateSize());
        linearBackward(block.gateProjection(), ws.mlpInput[layer], gateGrad, ws.normGrad, ws, false);
        linearBackward(block.upProjection(), ws.mlpInput[layer], upGrad, ws.normGrad, ws, true);
        Norms.rmsNormBackward(ws.normGrad, 0, ws.residualAfterAttention[layer], 0, block.postAttentionNormWeight(), 0,
                ws.mlpNormRstd[layer], 0, ws.normGrad, 0, null, 0, rows, hidden);
        VectorMath.addInPlace(ws.normGrad, 0, residualGrad, 0, rows * hidden);

        // The attention branch: x_mid = x_in + o(attention(rope(q(n)), rope(k(n)), v(n))).
        linearBackward(block.outputProjection(), ws.attentionOutput[layer], residualGrad, ws.attentionOutputGrad, ws,
                false);
        Attention.backward(ws.attentionOutputGrad, 0, ws.query[layer], 0, ws.key[layer], 0, ws.value[layer], 0,
                ws.attentionLogSumExp[layer], 0, ws.queryGrad, 0, ws.keyGrad, 0, ws.valueGrad, 0, ws.batch, ws.seqLen,
                config.numHeads(), config.numKeyValueHeads(), config.headDim());
        Rope.backward(ws.queryGrad, 0, ws.positions, 0, ropeTable, ws.queryGrad, 0, ws.batch, ws.seqLen,
                config.numHeads());
        Rope.backward(ws.keyGrad, 0, ws.positions, 0, ropeTable, ws.keyGrad, 0, ws.batch, ws.seqLen,
                config.numKeyValueHeads());
        float[] attentionInput = ws.attentionInput[layer];
        linearBackward(block.queryProjection(), attentionInput, ws.queryGrad, ws.normGrad, ws, false);
        linearBackward(block.keyProjection(), attentionInput, ws.keyGrad, ws.normGrad, ws, true);
        linearBackward(block.valueProjection(), attentionInput, ws.valueGrad, ws.normGrad, ws, true);
        Norms.rmsNormBackward(ws.normGrad, 0, ws.residual[layer], 0, block.inputNormWeight(), 0,
                ws.inputNormRstd[layer], 0, ws.normGrad, 0, null, 0, rows, hidden);
        VectorMath.addInPlace(ws.normGrad, 0, residualGrad, 0, rows * hidden);
    }

    private void linearForward(LoRALinear linear, float[] x, float[] y, Workspace ws, boolean training,
                               long dropoutKey) {
        int index = moduleIndex.get(linear);
        linear.forward(x, y, ws.rows, ws.linearActivations.get(index), training, Rng.hash(dropoutKey, index));
    }

    private void linearBackward(LoRALinear linear, float[] x, float[] dy, float[] dx, Workspace ws,
                                boolean accumulateDx) {
        linear.backward(x, dy, dx, ws.rows, ws.linearActivations.get(moduleIndex.get(linear)), accumulateDx);
    }

    private Workspace own(CausalLanguageModel.Workspace workspace) {
        if (!(Objects.requireNonNull(workspace, "workspace") instanceof Workspace ws) || ws.owner() != this) {
            throw new IllegalArgumentException("the workspace belongs to another model");
        }
        return ws;
    }

    private void checkIds(int[] ids, int rows, String what, boolean ignorable) {
        Objects.requireNonNull(ids, what + "s");
        if (ids.length != rows) {
            throw new IllegalArgumentException(ids.length + " " + what + "s for a workspace of " + rows + " (batch·seqLen)");
        }
        for (int i = 0; i < rows; i++) {
            int id = ids[i];
            boolean ignored = ignorable && id == Softmax.IGNORE_INDEX;
            if (!ignored && (id < 0 || id >= config.vocabSize())) {
                throw new IllegalArgumentException(what + " id " + id + " at index " + i + " is outside the vocabulary [0, "
                        + config.vocabSize() + ")" + (ignorable ? " and is not " + Softmax.IGNORE_INDEX : ""));
            }
        }
    }

    @Override
    public LoraAdapterConfig loraConfig() {
        return loraConfig;
    }

    @Override
    public Map<String, LoRALinear> adaptedModules() {
        return adaptedModules;
    }

    /** Every linear module, in {@link ModelLayout#linearModules()} order; rank 0 where not adapted. */
    public List<LoRALinear> linearModules() {
        return linearModules;
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    @Override
    public ModelLayout layout() {
        return layout;
    }

    // ---------------------------------------------------------------- generation

    /** The keys and values of one sequence, and the scratch of up to {@code chunkRows} new tokens. */
    private final class KvCache extends AbstractKvCache {
        /** [rows]: the new tokens' absolute positions, for RoPE. */
        private final int[] positions;
        /** [rows, H]: the new tokens' residual stream, updated in place block after block. */
        private final float[] residual;
        /** [rows, H]: a norm's output. */
        private final float[] normed;
        /** [rows]: a norm's 1/rms, not read again. */
        private final float[] rstd;
        /** [rows, heads·D]. */
        private final float[] query;
        /** [rows, kv·D]. */
        private final float[] key;
        /** [rows, kv·D]. */
        private final float[] value;
        /** [rows, heads·D]. */
        private final float[] attentionOutput;
        /** [rows, H]: o_proj's or down_proj's output before it joins the residual. */
        private final float[] branch;
        /** [rows, I]. */
        private final float[] gate;
        private final float[] up;
        private final float[] gated;
        /** [H]: the last token's final norm, the output head's input. */
        private final float[] lastNormed;
        /** The LoRA branch's scratch, one per linear module in {@link #linearModules} order. */
        private final List<LoRALinear.Activations> linearActivations;

        private KvCache(int capacity) {
            super(config, config.numKeyValueHeads(), capacity);
            int hidden = config.hiddenSize();
            int queryWidth = config.numHeads() * config.headDim();
            int keyValueWidth = config.numKeyValueHeads() * config.headDim();
            int inner = config.intermediateSize();
            this.positions = new int[chunkRows];
            this.residual = new float[chunkRows * hidden];
            this.normed = new float[chunkRows * hidden];
            this.rstd = new float[chunkRows];
            this.query = new float[chunkRows * queryWidth];
            this.key = new float[chunkRows * keyValueWidth];
            this.value = new float[chunkRows * keyValueWidth];
            this.attentionOutput = new float[chunkRows * queryWidth];
            this.branch = new float[chunkRows * hidden];
            this.gate = new float[chunkRows * inner];
            this.up = new float[chunkRows * inner];
            this.gated = new float[chunkRows * inner];
            this.lastNormed = new float[hidden];
            this.linearActivations = linearModules.stream().map(linear -> linear.newActivations(chunkRows)).toList();
        }

        private LlamaModel owner() {
            return LlamaModel.this;
        }
    }

    /** A cache of up to {@code capacity} ≤ max_position_embeddings tokens. */
    @Override
    public CausalLanguageModel.KvCache newKvCache(int capacity) {
        return new KvCache(capacity);
    }

    @Override
    public float[] decode(CausalLanguageModel.KvCache kvCache, int[] tokens) {
        KvCache cache = own(kvCache);
        cache.checkAppend(tokens, config.vocabSize());
        int hidden = config.hiddenSize();
        int rows = 0;
        for (int first = 0; first < tokens.length; first += rows) {
            rows = Math.min(cache.chunkRows, tokens.length - first);
            decodeChunk(cache, tokens, first, rows);
        }
        // Only the last token's logits are asked for.
        Norms.rmsNormForward(cache.residual, (rows - 1) * hidden, finalNormWeight, 0, cache.lastNormed, 0,
                cache.rstd, 0, 1, hidden, rmsNormEps);
        decodeLinear(outputHead, cache.lastNormed, cache.logits, 1, cache);
        return cache.logits;
    }

    /** Runs tokens [first, first + rows) through the blocks at positions length.., appending their keys and values. */
    private void decodeChunk(KvCache cache, int[] tokens, int first, int rows) {
        int hidden = config.hiddenSize();
        int heads = config.numHeads();
        int kvHeads = config.numKeyValueHeads();
        int headDim = config.headDim();
        int past = cache.length;
        float[] x = cache.residual;
        for (int row = 0; row < rows; row++) {
            System.arraycopy(tokenEmbedding, tokens[first + row] * hidden, x, row * hidden, hidden);
            cache.positions[row] = past + row;
        }
        for (int layer = 0; layer < blocks.size(); layer++) {
            Block block = blocks.get(layer);
            Norms.rmsNormForward(x, 0, block.inputNormWeight(), 0, cache.normed, 0, cache.rstd, 0, rows, hidden,
                    rmsNormEps);
            decodeLinear(block.queryProjection(), cache.normed, cache.query, rows, cache);
            decodeLinear(block.keyProjection(), cache.normed, cache.key, rows, cache);
            decodeLinear(block.valueProjection(), cache.normed, cache.value, rows, cache);
            Rope.forward(cache.query, 0, cache.positions, 0, ropeTable, cache.query, 0, 1, rows, heads);
            Rope.forward(cache.key, 0, cache.positions, 0, ropeTable, cache.key, 0, 1, rows, kvHeads);
            CachedAttention.append(cache.key, 0, cache.value, 0, kvHeads * headDim, rows, cache.keys[layer],
                    cache.values[layer], cache.capacity, past, kvHeads, headDim);
            CachedAttention.forward(cache.query, 0, heads * headDim, rows, cache.keys[layer], cache.values[layer],
                    cache.capacity, past, cache.attentionOutput, 0, heads, kvHeads, headDim, cache.scores);
            decodeLinear(block.outputProjection(), cache.attentionOutput, cache.branch, rows, cache);
            VectorMath.addInPlace(cache.branch, 0, x, 0, rows * hidden);

            Norms.rmsNormForward(x, 0, block.postAttentionNormWeight(), 0, cache.normed, 0, cache.rstd, 0, rows,
                    hidden, rmsNormEps);
            decodeLinear(block.gateProjection(), cache.normed, cache.gate, rows, cache);
            decodeLinear(block.upProjection(), cache.normed, cache.up, rows, cache);
            Activations.swigluForward(cache.gate, 0, cache.up, 0, cache.gated, 0, rows * config.intermediateSize());
            decodeLinear(block.downProjection(), cache.gated, cache.branch, rows, cache);
            VectorMath.addInPlace(cache.branch, 0, x, 0, rows * hidden);
        }
        cache.length = past + rows;
    }

    private void decodeLinear(LoRALinear linear, float[] x, float[] y, int rows, KvCache cache) {
        linear.forward(x, y, rows, cache.linearActivations.get(moduleIndex.get(linear)), false, 0);
    }

    private KvCache own(CausalLanguageModel.KvCache kvCache) {
        if (!(Objects.requireNonNull(kvCache, "cache") instanceof KvCache cache) || cache.owner() != this) {
            throw new IllegalArgumentException("the KV cache belongs to another model");
        }
        return cache;
    }
}
