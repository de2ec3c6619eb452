package dev.loraflow.core.model;

import dev.loraflow.core.kernels.Activations;
import dev.loraflow.core.kernels.Attention;
import dev.loraflow.core.kernels.AttentionSpec;
import dev.loraflow.core.kernels.CachedAttention;
import dev.loraflow.core.kernels.FrozenMatrix;
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
import java.util.stream.Stream;

/**
 * A RoPE decoder causal language model — Llama ({@code LlamaForCausalLM}) and the families that share
 * its block: Qwen2, Mistral, Gemma, Gemma 2, Phi-3 (see {@link DecoderConfig}) — with frozen base
 * weights and LoRA adapters on chosen linear modules, float32 throughout.
 *
 * <p>Each block computes x += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))) with
 * n = RMSNorm(x)·input_layernorm, then x += down_proj(act(gate_proj(m)) ⊙ up_proj(m)) with
 * m = RMSNorm(x)·post_attention_layernorm; the logits are model.norm(x)·lm_headᵀ, or ·embed_tokensᵀ
 * when the embeddings are tied. The families' flags change that as Transformers does: q/k/v biases
 * (Qwen2), Gemma's norms by (1 + w), its embeddings times √hidden and gelu_pytorch_tanh, a sliding
 * window per layer (Mistral, Gemma 2, Qwen2 when enabled, Phi-3), Gemma 2's score scale and
 * soft-capping. Two differences are structural and written out: Gemma 2 norms each branch's output
 * (post_attention_layernorm after o_proj; pre_ and post_feedforward_layernorm around the MLP), and
 * Phi-3 computes q, k, v with one qkv_proj and gate, up with one gate_up_proj, whose outputs are split
 * column-wise into the same buffers the other families fill.
 *
 * <p>Every linear module is a {@link LoRALinear}, of rank 0 where it has no adapter, so that all of
 * them run through the same kernels.
 */
public final class DecoderModel implements CausalLanguageModel {

    private final DecoderConfig config;
    private final ModelLayout layout;
    /** [V, H]. */
    /** [vocab, hidden]: float32 on the heap, or BF16/F16 mapped from the checkpoint. */
    private final FrozenMatrix tokenEmbedding;
    /** √hidden_size rounded to float (Gemma), else 1: what each embedding row is multiplied by. */
    private final float embeddingScale;
    private final List<Block> blocks;
    /** [H], as the norm multiplies (1 + w for Gemma). */
    private final float[] finalNormWeight;
    /** Reads [N, H], writes the logits [N, V]. */
    private final LoRALinear outputHead;
    private final RopeTable ropeTable;
    private final float rmsNormEps;
    /** Per layer: its scale, soft-cap and window. */
    private final List<AttentionSpec> attentionSpecs;
    /** Gemma 2's final_logit_softcapping, 0 for none. */
    private final float finalLogitSoftcap;
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

    /**
     * One block's weights. Norm weights are as the norm multiplies by them. Separate q/k/v and gate/up
     * projections are null where Phi-3 fuses them, the fused ones null elsewhere; the branch output
     * norms are Gemma 2's only.
     */
    private record Block(
            /* [H] */ float[] inputNormWeight,
            /* [H] or null: Gemma 2's post_attention_layernorm, on o_proj's output */ float[] attentionOutputNormWeight,
            /* [H]: post_attention_layernorm, Gemma 2's pre_feedforward_layernorm */ float[] mlpNormWeight,
            /* [H] or null: Gemma 2's post_feedforward_layernorm */ float[] mlpOutputNormWeight,
            LoRALinear queryProjection,
            LoRALinear keyProjection,
            LoRALinear valueProjection,
            LoRALinear fusedQkvProjection,
            LoRALinear outputProjection,
            LoRALinear gateProjection,
            LoRALinear upProjection,
            LoRALinear fusedGateUpProjection,
            LoRALinear downProjection) {

        List<LoRALinear> linears() {
            return Stream.of(queryProjection, keyProjection, valueProjection, fusedQkvProjection, outputProjection,
                    gateProjection, upProjection, fusedGateUpProjection, downProjection).filter(Objects::nonNull).toList();
        }

        boolean sandwichNorms() {
            return attentionOutputNormWeight != null;
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
    DecoderModel(DecoderConfig config, Map<String, float[]> weights, List<LoraTarget> loraTargets, float loraDropout,
               long seed) {
        this(config, weights, Map.of(), null, loraTargets, loraDropout, seed);
    }

    /**
     * @param weights every tensor of {@code ModelLayout.of(config)} under its canonical name, flattened
     *                row-major; used as given (not copied) and never written
     * @param lora    which modules get adapters, by PEFT's rules; null for none
     * @param seed    seeds A's initialisation, each module from its own hash of it
     * @throws IllegalArgumentException naming the tensor when a weight is missing, unexpected or of the
     *                                  wrong size, or if the config asks for trainable biases
     */
    public DecoderModel(DecoderConfig config, Map<String, float[]> weights, LoraAdapterConfig lora, long seed) {
        this(config, weights, Map.of(), lora, seed);
    }

    /**
     * @param frozen linear weights (and an untied output head) held off the heap or quantized, by canonical
     *               name; {@code weights} holds every other tensor
     */
    public DecoderModel(DecoderConfig config, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen,
                        LoraAdapterConfig lora, long seed) {
        this(config, weights, frozen, lora, lora == null ? List.of() : LoraTargets.select(ModelLayout.of(config), lora),
                lora == null ? 0f : (float) lora.loraDropout(), seed);
        if (lora != null && lora.bias() != LoraAdapterConfig.Bias.NONE) {
            throw new IllegalArgumentException("LoRA bias \"" + lora.bias().json()
                    + "\" (trainable biases) is not supported; use \"none\"");
        }
    }

    private DecoderModel(DecoderConfig config, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen,
                         LoraAdapterConfig lora, List<LoraTarget> loraTargets, float loraDropout, long seed) {
        this.config = Objects.requireNonNull(config, "config");
        this.loraConfig = lora;
        this.layout = ModelLayout.of(config);
        checkWeights(layout, weights, frozen);
        Map<String, LoraSpec> specs = loraSpecs(layout, loraTargets, loraDropout);

        float[] embeddingArray = weights.get("model.embed_tokens.weight");
        this.tokenEmbedding = embeddingArray != null
                ? FrozenMatrix.of(embeddingArray, config.vocabSize(), config.hiddenSize())
                : frozen.get("model.embed_tokens.weight");
        this.embeddingScale = config.family().scalesEmbeddings() ? (float) Math.sqrt(config.hiddenSize()) : 1f;
        this.finalNormWeight = normWeight(weights, "model.norm.weight");
        this.rmsNormEps = (float) config.rmsNormEps();
        this.ropeTable = RopeTable.create(config.maxPositions(), config.ropeTheta(), config.ropeInverseFrequencies());
        List<AttentionSpec> specsPerLayer = new ArrayList<>();
        for (int layer = 0; layer < config.numLayers(); layer++) {
            specsPerLayer.add(new AttentionSpec(config.attentionScale(), (float) config.attnLogitSoftcap(),
                    config.slidingWindow(layer)));
        }
        this.attentionSpecs = List.copyOf(specsPerLayer);
        this.finalLogitSoftcap = (float) config.finalLogitSoftcap();

        Map<String, LoRALinear> linearsByPath = new LinkedHashMap<>();
        List<LinearModule> modules = layout.linearModules();
        for (int index = 0; index < modules.size(); index++) {
            LinearModule module = modules.get(index);
            boolean tiedHead = module.outputLayer() && config.tieWordEmbeddings();
            float[] weight = tiedHead ? embeddingArray : weights.get(module.path() + ".weight");
            LoraSpec spec = specs.getOrDefault(module.path(), new LoraSpec(0, 0f, 0f, false));
            FrozenMatrix frozenWeight = weight != null ? null : tiedHead ? tokenEmbedding : frozen.get(module.path() + ".weight");
            linearsByPath.put(module.path(), LoRALinear.of(layout.peftModulePath(module.path()), module.in(),
                    module.out(), weight, frozenWeight, weights.get(module.path() + ".bias"), module.fanInFanOut(), spec,
                    Rng.hash(seed, index)));
        }
        this.linearModules = List.copyOf(linearsByPath.values());
        this.moduleIndex = new IdentityHashMap<>();
        for (int index = 0; index < linearModules.size(); index++) {
            moduleIndex.put(linearModules.get(index), index);
        }
        this.outputHead = linearsByPath.get(ModelLayout.OUTPUT_HEAD);

        boolean sandwich = config.family().sandwichNorms();
        List<Block> built = new ArrayList<>();
        for (int layer = 0; layer < config.numLayers(); layer++) {
            String prefix = "model.layers." + layer + ".";
            String attention = prefix + "self_attn.";
            String mlp = prefix + "mlp.";
            built.add(new Block(
                    normWeight(weights, prefix + "input_layernorm.weight"),
                    sandwich ? normWeight(weights, prefix + "post_attention_layernorm.weight") : null,
                    normWeight(weights, prefix + (sandwich ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")),
                    sandwich ? normWeight(weights, prefix + "post_feedforward_layernorm.weight") : null,
                    linearsByPath.get(attention + "q_proj"),
                    linearsByPath.get(attention + "k_proj"),
                    linearsByPath.get(attention + "v_proj"),
                    linearsByPath.get(attention + "qkv_proj"),
                    linearsByPath.get(attention + "o_proj"),
                    linearsByPath.get(mlp + "gate_proj"),
                    linearsByPath.get(mlp + "up_proj"),
                    linearsByPath.get(mlp + "gate_up_proj"),
                    linearsByPath.get(mlp + "down_proj")));
        }
        this.blocks = List.copyOf(built);
        this.firstAdaptedBlock = lowestAdaptedBlock(blocks);

        Map<String, LoRALinear> adapted = new LinkedHashMap<>();
        linearModules.stream().filter(linear -> linear.spec().rank() > 0)
                .forEach(linear -> adapted.put(linear.name(), linear));
        this.adaptedModules = Collections.unmodifiableMap(adapted);
    }

    /**
     * A norm weight as the norm multiplies by it: Gemma stores w and multiplies by 1 + w, computed
     * here once in float32 as its RMSNorm does.
     */
    private static void checkWeights(ModelLayout layout, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen) {
        Objects.requireNonNull(weights, "weights");
        for (WeightSpec spec : layout.weights()) {
            float[] value = weights.get(spec.name());
            FrozenMatrix held = frozen.get(spec.name());
            if (value == null && held == null) {
                throw new IllegalArgumentException("missing weight " + spec.name() + " " + Arrays.toString(spec.shape()));
            }
            long length = value != null ? value.length : (long) held.rows() * held.cols();
            if (length != spec.numel()) {
                throw new IllegalArgumentException("weight " + spec.name() + " has " + length
                        + " elements, expected " + Arrays.toString(spec.shape()) + " = " + spec.numel());
            }
        }
        for (String name : frozen.keySet()) {
            if (layout.weight(name) == null) {
                throw new IllegalArgumentException("unexpected weight " + name);
            }
        }
        for (String name : weights.keySet()) {
            if (layout.weight(name) == null && !layout.isIgnorable(name)) {
                throw new IllegalArgumentException("unexpected weight " + name + " for a " + layout.config().modelType()
                        + " model with this configuration");
            }
        }
    }

    private float[] normWeight(Map<String, float[]> weights, String name) {
        float[] stored = weights.get(name);
        if (!config.family().normWeightOffsetByOne()) {
            return stored;
        }
        float[] offset = new float[stored.length];
        for (int i = 0; i < stored.length; i++) {
            offset[i] = 1f + stored[i];
        }
        return offset;
    }

    /**
     * Loads a Hugging Face model directory ({@code config.json} + {@code model.safetensors} or a sharded
     * index), F32/F16/BF16.
     *
     * @throws ModelConfigException      if the config is not a RoPE decoder's
     * @throws CheckpointLayoutException if the tensors do not match the config
     */
    public static DecoderModel load(Path modelDirectory, LoraAdapterConfig lora, long seed) throws IOException {
        ModelConfig read = ModelConfig.read(modelDirectory.resolve("config.json"));
        if (!(read instanceof DecoderConfig decoder)) {
            throw new ModelConfigException(modelDirectory.resolve("config.json") + ": model_type \"" + read.modelType()
                    + "\" is not a RoPE decoder's");
        }
        return new DecoderModel(decoder, CheckpointWeights.read(modelDirectory, ModelLayout.of(decoder)), lora, seed);
    }

    private static int lowestAdaptedBlock(List<Block> blocks) {
        for (int layer = 0; layer < blocks.size(); layer++) {
            if (blocks.get(layer).linears().stream().anyMatch(linear -> linear.spec().rank() > 0)) {
                return layer;
            }
        }
        return blocks.size();
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
     * and the backward's scratch, allocated once so that a training step allocates nothing — or, for forward passes
     * alone, the residual stream entering and leaving a block, one block's activations and the logits (the gradient
     * buffers are then null).
     */
    private final class Workspace implements CausalLanguageModel.Workspace {
        private final int batch;
        private final int seqLen;
        /** N = batch·seqLen, the rows every projection works on. */
        private final int rows;
        /** Holds no backward's buffers: a training forward and a backward refuse it. */
        private final boolean forwardOnly;
        private final BlockCheckpointing checkpointing;
        /** [N], 0..T−1 within each sequence. */
        private final int[] positions;
        /** [N], the forward's targets, which the loss gradient needs. */
        private final int[] targets;
        /** [L + 1][N, H]: residual stream entering each block, and leaving the last; what checkpointing keeps. */
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
        /** [L][N, H]: o_proj's output, the input of Gemma 2's post-attention norm; null without sandwich norms. */
        private final float[][] attentionBranch;
        /** [L][N]: 1/rms of each row of attentionBranch's norm; null without sandwich norms. */
        private final float[][] attentionBranchRstd;
        /** [L][N]: 1/rms of each row in the MLP's input norm. */
        private final float[][] mlpNormRstd;
        /** [L][N, H]: m, the input of gate/up_proj; shared where neither is adapted. */
        private final float[][] mlpInput;
        /** [L][N, I]: gate_proj's output; the backward overwrites it with its gradient. */
        private final float[][] gate;
        /** [L][N, I]: up_proj's output; the backward overwrites it with its gradient. */
        private final float[][] up;
        /** [L][N, I]: act(gate) ⊙ up, the input of down_proj; shared where down_proj is not adapted. */
        private final float[][] gated;
        /** [L][N, H]: down_proj's output, the input of Gemma 2's post-feedforward norm; null without sandwich norms. */
        private final float[][] mlpBranch;
        /** [L][N]; null without sandwich norms. */
        private final float[][] mlpBranchRstd;
        /** [N]: 1/rms of each row in the final norm. */
        private final float[] finalNormRstd;
        /** [N, H]: the final norm's output, the input of the output head. */
        private final float[] finalNormOutput;
        /** [N, V]: the logits, soft-capped where the config caps them. */
        private final float[] logits;
        /**
         * [N, V]: the logits' gradient: the logits array itself (overwritten), or its own array where a
         * soft-cap's derivative still needs the capped logits; null for forward passes alone.
         */
        private final float[] logitsGrad;
        /** [N]: log-sum-exp of each logits row, for the loss gradient. */
        private final float[] lossLogSumExp;
        /** Saved LoRA quantities, one per linear module in {@link #linearModules} order. */
        private final List<LoRALinear.Activations> linearActivations;
        /** [N, H]: o_proj and down_proj outputs in the forward (a checkpointed backward runs it again). */
        private final float[] hiddenScratch;
        /** [N, H]: the residual stream's gradient in the backward. */
        private final float[] residualGrad;
        /** [N, H]: gradient of a norm's output, then (in place) of its input. */
        private final float[] normGrad;
        /** [N, H]: gradient of a branch's output before its sandwich norm; null without them. */
        private final float[] branchGrad;
        /** [N, heads·D]: gradient of the attention output. */
        private final float[] attentionOutputGrad;
        /** [N, heads·D]. */
        private final float[] queryGrad;
        /** [N, kv·D]. */
        private final float[] keyGrad;
        /** [N, kv·D]. */
        private final float[] valueGrad;
        /** [N, I]: gradient of act(gate) ⊙ up. */
        private final float[] gatedGrad;
        /**
         * [N, max((heads + 2·kv)·D, 2·I)]: a fused projection's output before it is split, and its
         * gradient once joined; null without fused projections.
         */
        private final float[] fused;
        private boolean forwardDone;
        private boolean withLoss;
        private int countedTokens;

        private Workspace(int batch, int seqLen, boolean gradientCheckpointing, boolean forwardOnly) {
            this.forwardOnly = forwardOnly;
            this.checkpointing = new BlockCheckpointing(blocks.size(), gradientCheckpointing || forwardOnly);
            this.batch = batch;
            this.seqLen = seqLen;
            this.rows = Math.multiplyExact(batch, seqLen);
            int hidden = config.hiddenSize();
            int queryWidth = config.numHeads() * config.headDim();
            int keyValueWidth = config.numKeyValueHeads() * config.headDim();
            int inner = config.intermediateSize();
            int slots = checkpointing.slots();
            boolean sandwich = config.family().sandwichNorms();
            this.positions = new int[rows];
            for (int row = 0; row < rows; row++) {
                positions[row] = row % seqLen;
            }
            this.targets = new int[rows];
            this.residual = BlockCheckpointing.residualStream(blocks.size(), Math.multiplyExact(rows, hidden), forwardOnly);
            this.residualAfterAttention = matrices(slots, rows, hidden);
            this.inputNormRstd = matrices(slots, rows, 1);
            this.attentionInput = savedWhereAdapted(rows, hidden, Block::queryProjection, Block::keyProjection,
                    Block::valueProjection, Block::fusedQkvProjection);
            this.query = matrices(slots, rows, queryWidth);
            this.key = matrices(slots, rows, keyValueWidth);
            this.value = matrices(slots, rows, keyValueWidth);
            this.attentionLogSumExp = matrices(slots, rows, config.numHeads());
            this.attentionOutput = savedWhereAdapted(rows, queryWidth, Block::outputProjection);
            this.attentionBranch = sandwich ? matrices(slots, rows, hidden) : null;
            this.attentionBranchRstd = sandwich ? matrices(slots, rows, 1) : null;
            this.mlpNormRstd = matrices(slots, rows, 1);
            this.mlpInput = savedWhereAdapted(rows, hidden, Block::gateProjection, Block::upProjection,
                    Block::fusedGateUpProjection);
            this.gate = matrices(slots, rows, inner);
            this.up = matrices(slots, rows, inner);
            this.gated = savedWhereAdapted(rows, inner, Block::downProjection);
            this.mlpBranch = sandwich ? matrices(slots, rows, hidden) : null;
            this.mlpBranchRstd = sandwich ? matrices(slots, rows, 1) : null;
            this.finalNormRstd = new float[rows];
            this.finalNormOutput = new float[Math.multiplyExact(rows, hidden)];
            this.logits = new float[Math.multiplyExact(rows, config.vocabSize())];
            this.logitsGrad = forwardOnly ? null : finalLogitSoftcap > 0 ? new float[logits.length] : logits;
            this.lossLogSumExp = new float[rows];
            this.linearActivations = linearModules.stream().map(linear -> forwardOnly
                    ? linear.newForwardActivations(rows) : linear.newActivations(rows)).toList();
            this.hiddenScratch = new float[rows * hidden];
            boolean backward = !forwardOnly;
            this.residualGrad = backward ? new float[rows * hidden] : null;
            this.normGrad = backward ? new float[rows * hidden] : null;
            this.branchGrad = backward && sandwich ? new float[rows * hidden] : null;
            this.attentionOutputGrad = backward ? new float[rows * queryWidth] : null;
            this.queryGrad = backward ? new float[rows * queryWidth] : null;
            this.keyGrad = backward ? new float[rows * keyValueWidth] : null;
            this.valueGrad = backward ? new float[rows * keyValueWidth] : null;
            this.gatedGrad = backward ? new float[rows * inner] : null;
            this.fused = config.family().fusedProjections()
                    ? new float[Math.multiplyExact(rows, Math.max(queryWidth + 2 * keyValueWidth, 2 * inner))]
                    : null;
        }

        /**
         * One [rows, cols] matrix per slot holding the input of the given linear modules. Only an
         * adapter's backward reads its input, so blocks where none of them is adapted share one
         * scratch matrix instead (checkpointing holds one slot, one matrix either way).
         */
        @SafeVarargs
        private float[][] savedWhereAdapted(int rows, int cols, Function<Block, LoRALinear>... readers) {
            float[] shared = null;
            float[][] matrices = new float[checkpointing.slots()][];
            for (int layer = 0; layer < matrices.length; layer++) {
                Block block = blocks.get(layer);
                boolean adapted = Arrays.stream(readers).map(reader -> reader.apply(block))
                        .anyMatch(linear -> linear != null && linear.spec().rank() > 0);
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

        private DecoderModel owner() {
            return DecoderModel.this;
        }
    }

    /**
     * Activations for batches of {@code batch} sequences of {@code seqLen} tokens; see
     * {@link CausalLanguageModel#newWorkspace(int, int, boolean)}.
     *
     * @throws IllegalArgumentException if a size is not positive or seqLen exceeds max_position_embeddings
     */
    @Override
    public CausalLanguageModel.Workspace newWorkspace(int batch, int seqLen, boolean gradientCheckpointing) {
        return newWorkspace(batch, seqLen, gradientCheckpointing, false);
    }

    @Override
    public CausalLanguageModel.Workspace newForwardWorkspace(int batch, int seqLen) {
        return newWorkspace(batch, seqLen, true, true);
    }

    private Workspace newWorkspace(int batch, int seqLen, boolean gradientCheckpointing, boolean forwardOnly) {
        if (batch <= 0 || seqLen <= 0) {
            throw new IllegalArgumentException("batch and seqLen must be positive, got " + batch + " and " + seqLen);
        }
        if (seqLen > config.maxPositions()) {
            throw new IllegalArgumentException("seqLen " + seqLen + " exceeds the context of max_position_embeddings "
                    + config.maxPositions());
        }
        return new Workspace(batch, seqLen, gradientCheckpointing, forwardOnly);
    }

    /**
     * Bytes {@link #newForwardWorkspace}({@code batch}, {@code seqLen}) allocates beside the adapters' projections
     * ({@link LoRALinear#forwardActivationBytes}).
     */
    static long forwardWorkspaceBytes(DecoderConfig config, int batch, int seqLen) {
        long rows = (long) batch * seqLen;
        long hidden = config.hiddenSize();
        long queryWidth = (long) config.numHeads() * config.headDim();
        long keyValueWidth = (long) config.numKeyValueHeads() * config.headDim();
        long inner = config.intermediateSize();
        long fused = config.family().fusedProjections() ? Math.max(queryWidth + 2 * keyValueWidth, 2 * inner) : 0;
        long sandwich = config.family().sandwichNorms() ? 2 * hidden + 2 : 0;
        // positions, targets, the three norms' rstd and the loss's log-sum-exp; the two residual matrices, the residual
        // after attention, the attention's and the MLP's inputs, the final norm's output and the o/down_proj scratch;
        // query and attention output; key and value; the heads' log-sum-exp; gate, up and gated; the logits
        long perRow = 6 + 7 * hidden + 2 * queryWidth + 2 * keyValueWidth + config.numHeads() + 3 * inner
                + config.vocabSize() + fused + sandwich;
        return 4 * rows * perRow;
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
        if (training && ws.forwardOnly) {
            throw new IllegalArgumentException("a training forward needs a workspace for the backward (newWorkspace), "
                    + "not one for forward passes alone");
        }
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
        embed(tokens, 0, rows, ws.residual[0]);
        ws.checkpointing.forward(training, dropoutKey, (layer, train, key) -> forwardBlock(layer, ws, train, key));
        Norms.rmsNormForward(ws.residual[blocks.size()], 0, finalNormWeight, 0, ws.finalNormOutput, 0,
                ws.finalNormRstd, 0, rows, hidden, rmsNormEps);
        linearForward(outputHead, ws.finalNormOutput, ws.logits, ws, training, dropoutKey);
        capLogits(ws.logits, ws.logits.length);
        double loss = Softmax.crossEntropyForward(ws.logits, 0, ws.targets, 0, ws.lossLogSumExp, 0, rows,
                config.vocabSize());
        ws.forwardDone = true;
        ws.withLoss = true;
        return loss;
    }

    /** x[row] = embed_tokens[tokens[first + row]] · embeddingScale for rows [0, rows). */
    private void embed(int[] tokens, int first, int rows, float[] x) {
        int hidden = config.hiddenSize();
        for (int row = 0; row < rows; row++) {
            tokenEmbedding.widen(tokens[first + row], 0, hidden, x, row * hidden);
        }
        if (embeddingScale != 1f) {
            VectorMath.scale(embeddingScale, x, 0, rows * hidden);
        }
    }

    /** Gemma 2's final soft-cap, c·tanh(logit/c) in float32; nothing for the other families. */
    private void capLogits(float[] logits, int n) {
        if (finalLogitSoftcap == 0) {
            return;
        }
        for (int i = 0; i < n; i++) {
            logits[i] = (float) Math.tanh(logits[i] / finalLogitSoftcap) * finalLogitSoftcap;
        }
    }

    private void forwardBlock(int layer, Workspace ws, boolean training, long dropoutKey) {
        Block block = blocks.get(layer);
        int slot = ws.checkpointing.slot(layer);
        int rows = ws.rows;
        int hidden = config.hiddenSize();
        float[] x = ws.residual[layer];
        float[] attentionInput = ws.attentionInput[slot];
        float[] query = ws.query[slot];
        float[] key = ws.key[slot];

        Norms.rmsNormForward(x, 0, block.inputNormWeight(), 0, attentionInput, 0, ws.inputNormRstd[slot], 0,
                rows, hidden, rmsNormEps);
        if (block.fusedQkvProjection() != null) {
            linearForward(block.fusedQkvProjection(), attentionInput, ws.fused, ws, training, dropoutKey);
            splitQkv(ws.fused, query, key, ws.value[slot], rows);
        } else {
            linearForward(block.queryProjection(), attentionInput, query, ws, training, dropoutKey);
            linearForward(block.keyProjection(), attentionInput, key, ws, training, dropoutKey);
            linearForward(block.valueProjection(), attentionInput, ws.value[slot], ws, training, dropoutKey);
        }
        Rope.forward(query, 0, ws.positions, 0, ropeTable, query, 0, ws.batch, ws.seqLen, config.numHeads());
        Rope.forward(key, 0, ws.positions, 0, ropeTable, key, 0, ws.batch, ws.seqLen, config.numKeyValueHeads());
        Attention.forward(query, 0, key, 0, ws.value[slot], 0, ws.attentionOutput[slot], 0,
                ws.attentionLogSumExp[slot], 0, ws.batch, ws.seqLen, config.numHeads(), config.numKeyValueHeads(),
                config.headDim(), attentionSpecs.get(layer));
        if (block.sandwichNorms()) {
            linearForward(block.outputProjection(), ws.attentionOutput[slot], ws.attentionBranch[slot], ws, training,
                    dropoutKey);
            Norms.rmsNormForward(ws.attentionBranch[slot], 0, block.attentionOutputNormWeight(), 0, ws.hiddenScratch,
                    0, ws.attentionBranchRstd[slot], 0, rows, hidden, rmsNormEps);
        } else {
            linearForward(block.outputProjection(), ws.attentionOutput[slot], ws.hiddenScratch, ws, training,
                    dropoutKey);
        }
        float[] afterAttention = ws.residualAfterAttention[slot];
        VectorMath.add(x, 0, ws.hiddenScratch, 0, afterAttention, 0, rows * hidden);

        float[] mlpInput = ws.mlpInput[slot];
        Norms.rmsNormForward(afterAttention, 0, block.mlpNormWeight(), 0, mlpInput, 0,
                ws.mlpNormRstd[slot], 0, rows, hidden, rmsNormEps);
        if (block.fusedGateUpProjection() != null) {
            linearForward(block.fusedGateUpProjection(), mlpInput, ws.fused, ws, training, dropoutKey);
            splitGateUp(ws.fused, ws.gate[slot], ws.up[slot], rows);
        } else {
            linearForward(block.gateProjection(), mlpInput, ws.gate[slot], ws, training, dropoutKey);
            linearForward(block.upProjection(), mlpInput, ws.up[slot], ws, training, dropoutKey);
        }
        gatedActivation(ws.gate[slot], ws.up[slot], ws.gated[slot], rows * config.intermediateSize());
        if (block.sandwichNorms()) {
            linearForward(block.downProjection(), ws.gated[slot], ws.mlpBranch[slot], ws, training, dropoutKey);
            Norms.rmsNormForward(ws.mlpBranch[slot], 0, block.mlpOutputNormWeight(), 0, ws.hiddenScratch, 0,
                    ws.mlpBranchRstd[slot], 0, rows, hidden, rmsNormEps);
        } else {
            linearForward(block.downProjection(), ws.gated[slot], ws.hiddenScratch, ws, training, dropoutKey);
        }
        VectorMath.add(afterAttention, 0, ws.hiddenScratch, 0, ws.residual[layer + 1], 0, rows * hidden);
    }

    /** gated = act(gate) ⊙ up, SiLU or GELU (tanh form). */
    private void gatedActivation(float[] gate, float[] up, float[] gated, int n) {
        switch (config.activation()) {
            case SILU -> Activations.swigluForward(gate, 0, up, 0, gated, 0, n);
            case GELU_TANH -> {
                Activations.geluForward(gate, 0, gated, 0, n);
                VectorMath.mul(gated, 0, up, 0, gated, 0, n);
            }
        }
    }

    /**
     * The gradients of gate and up from that of act(gate) ⊙ up, written over gate and up (not read
     * again); {@code scratch} [n] is overwritten.
     */
    private void gatedActivationBackward(float[] gatedGrad, float[] gate, float[] up, float[] scratch, int n) {
        switch (config.activation()) {
            case SILU -> Activations.swigluBackward(gatedGrad, 0, gate, 0, up, 0, gate, 0, up, 0, n);
            case GELU_TANH -> {
                Activations.geluForward(gate, 0, scratch, 0, n);
                VectorMath.mul(gatedGrad, 0, up, 0, up, 0, n);          // up := d act(gate)
                Activations.geluBackward(up, 0, gate, 0, gate, 0, n);   // gate := d gate
                VectorMath.mul(gatedGrad, 0, scratch, 0, up, 0, n);     // up := d up = dOut ⊙ act(gate)
            }
        }
    }

    /** Phi-3's qkv_proj output [rows, (heads + 2·kv)·D] into q [rows, heads·D], k and v [rows, kv·D]. */
    private void splitQkv(float[] fused, float[] query, float[] key, float[] value, int rows) {
        int queryWidth = config.numHeads() * config.headDim();
        int keyValueWidth = config.numKeyValueHeads() * config.headDim();
        int width = queryWidth + 2 * keyValueWidth;
        for (int row = 0; row < rows; row++) {
            System.arraycopy(fused, row * width, query, row * queryWidth, queryWidth);
            System.arraycopy(fused, row * width + queryWidth, key, row * keyValueWidth, keyValueWidth);
            System.arraycopy(fused, row * width + queryWidth + keyValueWidth, value, row * keyValueWidth, keyValueWidth);
        }
    }

    /** The inverse of {@link #splitQkv}, for the gradients. */
    private void joinQkv(float[] query, float[] key, float[] value, float[] fused, int rows) {
        int queryWidth = config.numHeads() * config.headDim();
        int keyValueWidth = config.numKeyValueHeads() * config.headDim();
        int width = queryWidth + 2 * keyValueWidth;
        for (int row = 0; row < rows; row++) {
            System.arraycopy(query, row * queryWidth, fused, row * width, queryWidth);
            System.arraycopy(key, row * keyValueWidth, fused, row * width + queryWidth, keyValueWidth);
            System.arraycopy(value, row * keyValueWidth, fused, row * width + queryWidth + keyValueWidth, keyValueWidth);
        }
    }

    /** Phi-3's gate_up_proj output [rows, 2·I]: the gate is the first half of each row, up the second. */
    private void splitGateUp(float[] fused, float[] gate, float[] up, int rows) {
        int inner = config.intermediateSize();
        for (int row = 0; row < rows; row++) {
            System.arraycopy(fused, row * 2 * inner, gate, row * inner, inner);
            System.arraycopy(fused, row * 2 * inner + inner, up, row * inner, inner);
        }
    }

    /** The inverse of {@link #splitGateUp}, for the gradients. */
    private void joinGateUp(float[] gate, float[] up, float[] fused, int rows) {
        int inner = config.intermediateSize();
        for (int row = 0; row < rows; row++) {
            System.arraycopy(gate, row * inner, fused, row * 2 * inner, inner);
            System.arraycopy(up, row * inner, fused, row * 2 * inner + inner, inner);
        }
    }

    @Override
    public void backward(CausalLanguageModel.Workspace workspace, float dLoss) {
        Workspace ws = own(workspace);
        if (ws.forwardOnly) {
            throw new IllegalStateException("backward on a workspace for forward passes alone; use newWorkspace");
        }
        if (!ws.forwardDone || !ws.withLoss) {
            throw new IllegalStateException("backward needs a forward with labels on this workspace first (once per forward)");
        }
        ws.forwardDone = false;
        int rows = ws.rows;
        int hidden = config.hiddenSize();
        float[] logitsGrad = ws.logitsGrad;
        Softmax.crossEntropyBackward(ws.logits, 0, ws.targets, 0, ws.lossLogSumExp, 0, dLoss, logitsGrad, 0, rows,
                config.vocabSize());
        if (finalLogitSoftcap > 0) {
            // d(c·tanh(z/c))/dz = 1 − tanh², with tanh the capped logit over c.
            for (int i = 0; i < logitsGrad.length; i++) {
                float t = ws.logits[i] / finalLogitSoftcap;
                logitsGrad[i] *= 1 - t * t;
            }
        }
        linearBackward(outputHead, ws.finalNormOutput, logitsGrad, ws.normGrad, ws, false);
        float[] residualGrad = ws.residualGrad;
        Norms.rmsNormBackward(ws.normGrad, 0, ws.residual[blocks.size()], 0, finalNormWeight, 0, ws.finalNormRstd, 0,
                residualGrad, 0, null, 0, rows, hidden);
        ws.checkpointing.backward(firstAdaptedBlock, (layer, train, key) -> forwardBlock(layer, ws, train, key),
                layer -> backwardBlock(layer, ws, residualGrad));
    }

    /** Turns residualGrad, the gradient of the block's output, into that of its input. */
    private void backwardBlock(int layer, Workspace ws, float[] residualGrad) {
        Block block = blocks.get(layer);
        int slot = ws.checkpointing.slot(layer);
        int rows = ws.rows;
        int hidden = config.hiddenSize();

        // The MLP branch: x_out = x_mid + [norm](down(act(gate(m)) ⊙ up(m))).
        float[] downGrad = residualGrad;
        if (block.sandwichNorms()) {
            Norms.rmsNormBackward(residualGrad, 0, ws.mlpBranch[slot], 0, block.mlpOutputNormWeight(), 0,
                    ws.mlpBranchRstd[slot], 0, ws.branchGrad, 0, null, 0, rows, hidden);
            downGrad = ws.branchGrad;
        }
        linearBackward(block.downProjection(), ws.gated[slot], downGrad, ws.gatedGrad, ws, false);
        // In place: gate and up are not read again after their gradients are formed, nor is gated.
        float[] gateGrad = ws.gate[slot];
        float[] upGrad = ws.up[slot];
        gatedActivationBackward(ws.gatedGrad, gateGrad, upGrad, ws.gated[slot], rows * config.intermediateSize());
        if (block.fusedGateUpProjection() != null) {
            joinGateUp(gateGrad, upGrad, ws.fused, rows);
            linearBackward(block.fusedGateUpProjection(), ws.mlpInput[slot], ws.fused, ws.normGrad, ws, false);
        } else {
            linearBackward(block.gateProjection(), ws.mlpInput[slot], gateGrad, ws.normGrad, ws, false);
            linearBackward(block.upProjection(), ws.mlpInput[slot], upGrad, ws.normGrad, ws, true);
        }
        Norms.rmsNormBackward(ws.normGrad, 0, ws.residualAfterAttention[slot], 0, block.mlpNormWeight(), 0,
                ws.mlpNormRstd[slot], 0, ws.normGrad, 0, null, 0, rows, hidden);
        VectorMath.addInPlace(ws.normGrad, 0, residualGrad, 0, rows * hidden);

        // The attention branch: x_mid = x_in + [norm](o(attention(rope(q(n)), rope(k(n)), v(n)))).
        float[] outputGrad = residualGrad;
        if (block.sandwichNorms()) {
            Norms.rmsNormBackward(residualGrad, 0, ws.attentionBranch[slot], 0, block.attentionOutputNormWeight(), 0,
                    ws.attentionBranchRstd[slot], 0, ws.branchGrad, 0, null, 0, rows, hidden);
            outputGrad = ws.branchGrad;
        }
        linearBackward(block.outputProjection(), ws.attentionOutput[slot], outputGrad, ws.attentionOutputGrad, ws,
                false);
        Attention.backward(ws.attentionOutputGrad, 0, ws.query[slot], 0, ws.key[slot], 0, ws.value[slot], 0,
                ws.attentionLogSumExp[slot], 0, ws.queryGrad, 0, ws.keyGrad, 0, ws.valueGrad, 0, ws.batch, ws.seqLen,
                config.numHeads(), config.numKeyValueHeads(), config.headDim(), attentionSpecs.get(layer));
        Rope.backward(ws.queryGrad, 0, ws.positions, 0, ropeTable, ws.queryGrad, 0, ws.batch, ws.seqLen,
                config.numHeads());
        Rope.backward(ws.keyGrad, 0, ws.positions, 0, ropeTable, ws.keyGrad, 0, ws.batch, ws.seqLen,
                config.numKeyValueHeads());
        float[] attentionInput = ws.attentionInput[slot];
        if (block.fusedQkvProjection() != null) {
            joinQkv(ws.queryGrad, ws.keyGrad, ws.valueGrad, ws.fused, rows);
            linearBackward(block.fusedQkvProjection(), attentionInput, ws.fused, ws.normGrad, ws, false);
        } else {
            linearBackward(block.queryProjection(), attentionInput, ws.queryGrad, ws.normGrad, ws, false);
            linearBackward(block.keyProjection(), attentionInput, ws.keyGrad, ws.normGrad, ws, true);
            linearBackward(block.valueProjection(), attentionInput, ws.valueGrad, ws.normGrad, ws, true);
        }
        Norms.rmsNormBackward(ws.normGrad, 0, ws.residual[layer], 0, block.inputNormWeight(), 0,
                ws.inputNormRstd[slot], 0, ws.normGrad, 0, null, 0, rows, hidden);
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
    public DecoderConfig config() {
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
        /** [rows, max((heads + 2·kv)·D, 2·I)]: a fused projection's output; null without them. */
        private final float[] fused;
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
            this.fused = config.family().fusedProjections()
                    ? new float[chunkRows * Math.max(queryWidth + 2 * keyValueWidth, 2 * inner)]
                    : null;
            this.lastNormed = new float[hidden];
            this.linearActivations = linearModules.stream().map(linear -> linear.newForwardActivations(chunkRows)).toList();
        }

        private DecoderModel owner() {
            return DecoderModel.this;
        }
    }

    /** Bytes {@link #newKvCache}({@code capacity}) allocates, adapters' scratch aside: the fields of {@link KvCache}. */
    static long kvCacheBytes(DecoderConfig config, int capacity) {
        long rows = AbstractKvCache.chunkRows(capacity);
        long hidden = config.hiddenSize();
        long queryWidth = (long) config.numHeads() * config.headDim();
        long keyValueWidth = (long) config.numKeyValueHeads() * config.headDim();
        long inner = config.intermediateSize();
        long fused = config.family().fusedProjections() ? Math.max(queryWidth + 2 * keyValueWidth, 2 * inner) : 0;
        // positions and rstd; residual, normed and branch; query and attentionOutput; key and value; gate, up and gated
        long perRow = 2 + 3 * hidden + 2 * queryWidth + 2 * keyValueWidth + 3 * inner + fused;
        return AbstractKvCache.bytes(config, config.numKeyValueHeads(), capacity) + 4 * (rows * perRow + hidden);
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
        capLogits(cache.logits, cache.logits.length);
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
        embed(tokens, first, rows, x);
        for (int row = 0; row < rows; row++) {
            cache.positions[row] = past + row;
        }
        for (int layer = 0; layer < blocks.size(); layer++) {
            Block block = blocks.get(layer);
            Norms.rmsNormForward(x, 0, block.inputNormWeight(), 0, cache.normed, 0, cache.rstd, 0, rows, hidden,
                    rmsNormEps);
            if (block.fusedQkvProjection() != null) {
                decodeLinear(block.fusedQkvProjection(), cache.normed, cache.fused, rows, cache);
                splitQkv(cache.fused, cache.query, cache.key, cache.value, rows);
            } else {
                decodeLinear(block.queryProjection(), cache.normed, cache.query, rows, cache);
                decodeLinear(block.keyProjection(), cache.normed, cache.key, rows, cache);
                decodeLinear(block.valueProjection(), cache.normed, cache.value, rows, cache);
            }
            Rope.forward(cache.query, 0, cache.positions, 0, ropeTable, cache.query, 0, 1, rows, heads);
            Rope.forward(cache.key, 0, cache.positions, 0, ropeTable, cache.key, 0, 1, rows, kvHeads);
            CachedAttention.append(cache.key, 0, cache.value, 0, kvHeads * headDim, rows, cache.keys[layer],
                    cache.values[layer], cache.capacity, past, kvHeads, headDim);
            CachedAttention.forward(cache.query, 0, heads * headDim, rows, cache.keys[layer], cache.values[layer],
                    cache.capacity, past, cache.attentionOutput, 0, heads, kvHeads, headDim, cache.scores,
                    attentionSpecs.get(layer));
            decodeLinear(block.outputProjection(), cache.attentionOutput, cache.branch, rows, cache);
            addBranch(cache, block.attentionOutputNormWeight(), x, rows);

            Norms.rmsNormForward(x, 0, block.mlpNormWeight(), 0, cache.normed, 0, cache.rstd, 0, rows,
                    hidden, rmsNormEps);
            if (block.fusedGateUpProjection() != null) {
                decodeLinear(block.fusedGateUpProjection(), cache.normed, cache.fused, rows, cache);
                splitGateUp(cache.fused, cache.gate, cache.up, rows);
            } else {
                decodeLinear(block.gateProjection(), cache.normed, cache.gate, rows, cache);
                decodeLinear(block.upProjection(), cache.normed, cache.up, rows, cache);
            }
            gatedActivation(cache.gate, cache.up, cache.gated, rows * config.intermediateSize());
            decodeLinear(block.downProjection(), cache.gated, cache.branch, rows, cache);
            addBranch(cache, block.mlpOutputNormWeight(), x, rows);
        }
        cache.length = past + rows;
    }

    /** x += the cache's branch output, through Gemma 2's branch norm when the block has one (normWeight not null). */
    private void addBranch(KvCache cache, float[] normWeight, float[] x, int rows) {
        int hidden = config.hiddenSize();
        float[] branch = cache.branch;
        if (normWeight != null) {
            Norms.rmsNormForward(cache.branch, 0, normWeight, 0, cache.normed, 0, cache.rstd, 0, rows, hidden, rmsNormEps);
            branch = cache.normed;
        }
        VectorMath.addInPlace(branch, 0, x, 0, rows * hidden);
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
