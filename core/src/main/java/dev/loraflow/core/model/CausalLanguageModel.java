package dev.loraflow.core.model;

import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A causal language model with frozen base weights and LoRA adapters: what training, evaluation,
 * generation and merging see, whatever the architecture.
 *
 * <p>Labels follow Hugging Face's convention everywhere: {@code labels[t]} is the token position t
 * should be predicted as, the model shifts them so that position t − 1 predicts it, and −100 is
 * ignored. The loss is the mean cross-entropy over counted tokens.
 */
public sealed interface CausalLanguageModel permits Gpt2Model, DecoderModel {

    /** Activations and scratch of one batch shape, planned once; one per concurrent batch. */
    interface Workspace {
        int batch();

        int seqLen();

        /** [batch·seqLen, vocab]: the last forward's logits; a backward overwrites them with their gradient. */
        float[] logits();

        /** The targets the last forward's loss averaged over: labels after the shift that are not −100. */
        int countedTokens();
    }

    /**
     * The keys and values of the tokens one sequence has seen so far, so that generation runs each new
     * token through the model once. Made by {@link #newKvCache} and read by {@link #decode} of the same
     * model, one thread at a time. It holds what the weights and adapters gave when its tokens went in:
     * after {@link #merge()}, {@link #unmerge()}, {@link #loadAdapter} or a training step, {@link #reset()} it.
     */
    interface KvCache {
        /** The most tokens the sequence may hold. */
        int capacity();

        /** Tokens cached so far; the next one goes to this position. */
        int length();

        /** Empties the cache for a new sequence, keeping its buffers. */
        void reset();
    }

    ModelConfig config();

    ModelLayout layout();

    /** The adapter config the model was built with, or null when it has no adapter. */
    LoraAdapterConfig loraConfig();

    /** The adapted modules by PEFT module path, in module order. */
    Map<String, LoRALinear> adaptedModules();

    /** Buffers for batches of {@code batch} sequences of {@code seqLen} tokens, every block's activations kept. */
    default Workspace newWorkspace(int batch, int seqLen) {
        return newWorkspace(batch, seqLen, false);
    }

    /**
     * Buffers for batches of {@code batch} sequences of {@code seqLen} tokens.
     *
     * @param gradientCheckpointing keep only each transformer block's input and one block's activations,
     *                              recomputing a block's forward in the backward: activation memory grows
     *                              with one block, not with depth; the gradients are bit-identical
     */
    Workspace newWorkspace(int batch, int seqLen, boolean gradientCheckpointing);

    /**
     * Buffers for forward passes alone ({@code training} false) over batches of {@code batch} sequences of {@code
     * seqLen} tokens: the residual stream entering and leaving a block, one block's activations, the logits, and
     * nothing a backward reads or writes (no gradients, no adapter's input): memory grows with one block, not with
     * depth, and holds no backward's buffers. The losses and logits are those of {@link #newWorkspace} bit for bit.
     * A training forward and a backward on it are refused.
     */
    Workspace newForwardWorkspace(int batch, int seqLen);

    /**
     * Bytes {@link #newForwardWorkspace}({@code batch}, {@code seqLen}) allocates for a model of {@code config} with
     * the adapters of {@code lora} (null for none), known before the model is loaded: what an evaluation's memory
     * check counts.
     */
    static long forwardWorkspaceBytes(ModelConfig config, LoraAdapterConfig lora, int batch, int seqLen) {
        long bytes = switch (config) {
            case Gpt2Config gpt2 -> Gpt2Model.forwardWorkspaceBytes(gpt2, batch, seqLen);
            case DecoderConfig decoder -> DecoderModel.forwardWorkspaceBytes(decoder, batch, seqLen);
        };
        return bytes + adapterForwardBytes(config, lora, (long) batch * seqLen);
    }

    /**
     * Runs the model on {@code batch × seqLen} token ids (row-major; position t of each sequence is t),
     * keeping what the backward needs.
     *
     * @param labels     [batch·seqLen] in Hugging Face's convention, or null for logits only
     * @param training   applies the adapters' dropout
     * @param dropoutKey the same key gives the same dropout masks
     * @return the mean cross-entropy over counted tokens (0 when none counts), NaN without labels
     */
    double forward(Workspace ws, int[] inputIds, int[] labels, boolean training, long dropoutKey);

    /**
     * Accumulates (+=) the gradient of {@code dLoss ·} the last forward's loss into every adapter's A
     * and B; 1 for a plain step, 1/k when averaging k micro-batches. Consumes the workspace's logits.
     *
     * @throws IllegalStateException if the workspace holds no forward with labels
     */
    void backward(Workspace ws, float dLoss);

    /**
     * A cache for one sequence of up to {@code capacity} tokens, with all the scratch its
     * {@link #decode} calls need: decoding allocates nothing.
     *
     * @throws IllegalArgumentException if capacity is not in [1, the model's context]
     */
    KvCache newKvCache(int capacity);

    /**
     * Bytes {@link #newKvCache}({@code capacity}) allocates for a model of {@code config} with the adapters of {@code
     * lora} (null for none), known before the model is loaded: what a generation's memory check counts.
     */
    static long kvCacheBytes(ModelConfig config, LoraAdapterConfig lora, int capacity) {
        long bytes = switch (config) {
            case Gpt2Config gpt2 -> Gpt2Model.kvCacheBytes(gpt2, capacity);
            case DecoderConfig decoder -> DecoderModel.kvCacheBytes(decoder, capacity);
        };
        return bytes + adapterForwardBytes(config, lora, AbstractKvCache.chunkRows(capacity));
    }

    /** What every adapted module of {@code lora} (null for none) keeps for forward passes of {@code rows} rows. */
    private static long adapterForwardBytes(ModelConfig config, LoraAdapterConfig lora, long rows) {
        long bytes = 0;
        if (lora != null) {
            for (LoraTarget target : LoraTargets.select(ModelLayout.of(config), lora)) {
                bytes += LoRALinear.forwardActivationBytes(rows, target.rank());
            }
        }
        return bytes;
    }

    /**
     * Appends {@code tokens} to the cached sequence at positions length..length+n−1 and returns the
     * logits of the last of them: a prompt's prefill is one call, each generated token another. The new
     * tokens attend to every cached one and causally among themselves, at their absolute positions, as
     * in {@link #forward} over the whole sequence; no dropout, adapters unmerged or merged alike.
     *
     * @param tokens one or more ids
     * @return [vocab], the cache's own buffer, overwritten by the next decode on it: copy it to keep it
     * @throws IllegalArgumentException if tokens is empty or would pass the cache's capacity, an id is
     *                                  outside the vocabulary, or the cache belongs to another model; the
     *                                  cache is then left as it was
     */
    float[] decode(KvCache cache, int[] tokens);

    /** Reads a Hugging Face model directory of any supported architecture. */
    static CausalLanguageModel load(Path modelDirectory, LoraAdapterConfig lora, long seed) throws IOException {
        return load(modelDirectory, lora, seed, Quantization.NONE);
    }

    /**
     * Reads a model directory with its frozen linear weights as {@link CheckpointWeights#readFrozen} holds
     * them: BF16/F16 ones mapped from the file, and quantized when {@code quantization} says so.
     */
    static CausalLanguageModel load(Path modelDirectory, LoraAdapterConfig lora, long seed, Quantization quantization)
            throws IOException {
        return load(modelDirectory, lora, seed, quantization, Arena.ofAuto());
    }

    /**
     * As {@link #load(Path, LoraAdapterConfig, long, Quantization)}, the mapped and quantized weights in {@code arena}:
     * closing it releases them at once, and the model must not be used after.
     */
    static CausalLanguageModel load(Path modelDirectory, LoraAdapterConfig lora, long seed, Quantization quantization,
                                    Arena arena) throws IOException {
        ModelConfig config = ModelConfig.read(modelDirectory.resolve("config.json"));
        CheckpointWeights.BaseWeights weights = CheckpointWeights.readFrozen(modelDirectory, ModelLayout.of(config),
                quantization, arena);
        return create(config, weights.arrays(), weights.frozen(), lora, seed);
    }

    /**
     * @param weights canonical tensor name → values; held, not copied, and never written
     * @param lora    which modules get adapters; null for none
     * @param seed    seeds the adapters' A initialisation
     */
    static CausalLanguageModel create(ModelConfig config, Map<String, float[]> weights, LoraAdapterConfig lora, long seed) {
        return switch (config) {
            case Gpt2Config gpt2 -> new Gpt2Model(gpt2, weights, lora, seed);
            case DecoderConfig llama -> new DecoderModel(llama, weights, lora, seed);
        };
    }

    /**
     * @param frozen linear weights held as frozen matrices (mapped, quantized), by canonical name;
     *               {@code weights} holds every other tensor
     */
    static CausalLanguageModel create(ModelConfig config, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen,
                                      LoraAdapterConfig lora, long seed) {
        return switch (config) {
            case Gpt2Config gpt2 -> new Gpt2Model(gpt2, weights, frozen, lora, seed);
            case DecoderConfig decoder -> new DecoderModel(decoder, weights, frozen, lora, seed);
        };
    }

    /** Every adapter's A and B, in module order, A before B: what an optimiser updates. */
    default List<Parameter> trainableParameters() {
        List<Parameter> parameters = new ArrayList<>();
        adaptedModules().values().forEach(module -> parameters.addAll(module.trainableParameters()));
        return List.copyOf(parameters);
    }

    /** Copies an adapter's A and B into the model's; it must adapt exactly the model's modules with their shapes. */
    default void loadAdapter(PeftAdapter adapter) {
        Map<String, LoRALinear> adapted = adaptedModules();
        Set<String> expected = adapted.keySet();
        Set<String> given = adapter.modules().keySet();
        if (!expected.equals(given)) {
            throw new IllegalArgumentException("the adapter's modules " + given + " are not the model's adapted modules " + expected);
        }
        for (LoraWeights weights : adapter.modules().values()) {
            LoRALinear module = adapted.get(weights.modulePath());
            if (weights.r() != module.spec().rank() || weights.inFeatures() != module.inFeatures()
                    || weights.outFeatures() != module.outFeatures()) {
                throw new IllegalArgumentException(weights.modulePath() + ": adapter is r=" + weights.r() + " ["
                        + weights.inFeatures() + " → " + weights.outFeatures() + "], the model's module r="
                        + module.spec().rank() + " [" + module.inFeatures() + " → " + module.outFeatures() + "]");
            }
        }
        for (LoraWeights weights : adapter.modules().values()) {
            LoRALinear module = adapted.get(weights.modulePath());
            System.arraycopy(weights.a(), 0, module.loraA().value(), 0, weights.a().length);
            System.arraycopy(weights.b(), 0, module.loraB().value(), 0, weights.b().length);
        }
    }

    /** A copy of the adapters in PEFT's form, with the config the model was built with. */
    default PeftAdapter toPeftAdapter() {
        if (loraConfig() == null) {
            throw new IllegalStateException("the model has no LoRA adapter");
        }
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        adaptedModules().forEach((path, module) -> modules.put(path, new LoraWeights(path, module.spec().rank(),
                module.inFeatures(), module.outFeatures(), module.loraA().value().clone(), module.loraB().value().clone())));
        return new PeftAdapter(loraConfig(), modules);
    }

    /** Folds every adapter into its (copied) base weight, all or none; see {@link LoRALinear#merge()}. */
    default void merge() {
        List<LoRALinear> merged = new ArrayList<>();
        try {
            for (LoRALinear module : adaptedModules().values()) {
                module.merge();
                merged.add(module);
            }
        } catch (RuntimeException e) {
            merged.forEach(LoRALinear::unmerge);
            throw e;
        }
    }

    /** Restores every base weight exactly; see {@link LoRALinear#unmerge()}. */
    default void unmerge() {
        adaptedModules().values().forEach(LoRALinear::unmerge);
    }
}
