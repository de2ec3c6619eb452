package dev.loraflow.core.train;

import dev.loraflow.core.io.Resources;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.LoraTarget;
import dev.loraflow.core.model.LoraTargets;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import java.io.IOException;
import java.nio.file.Path;

/**
 * What training or running a model will take, from its config and checkpoint header, before anything is
 * loaded: the weights as {@link CheckpointWeights#readFrozen} holds them, the adapter's parameters with
 * their gradients and AdamW moments, and the activations one micro-batch keeps for its backward.
 *
 * <p>The activation count is an upper estimate of what the models save per token and layer (the inputs
 * of every linear layer, the attention's queries, keys, values and probabilities, the MLP's inner
 * activations), plus the logits and their gradient, plus what every adapted module keeps for its own backward
 * (its input after dropout: 268 MB for r 16 on q,v of an 8 B model at 256 tokens); it errs high so that a run
 * that passes the check fits.
 * With gradient checkpointing the backward keeps each block's input and one block's activations instead
 * of every block's. A generation's activations are its key/value cache, counted exactly ({@link #forGeneration}), and
 * those of forward passes alone their workspace, counted exactly too ({@link #forForwardPasses}).
 *
 * @param weights   the base's footprint
 * @param adapter   LoRA parameters with what training or loading them holds beside them, bytes on the heap
 * @param activations bytes on the heap for one micro-batch, a generation's key/value cache and scratch, or a forward
 *                    pass's workspace
 * @param gradientCheckpointing whether the activations are those of a checkpointed step
 */
public record MemoryEstimate(CheckpointWeights.Footprint weights, long adapter, long activations,
                             boolean gradientCheckpointing) {

    /** JIT, buffers, tokenizer and the rest of a running JVM. */
    private static final long BASELINE = 64L << 20;

    /** The least heap a command is given: small models, the data and the JSON around them. */
    private static final long SMALLEST_HEAP = 512L << 20;

    /** Room for the collector beyond a quarter of what is live. */
    private static final long COLLECTOR_ROOM_MIB = 128;

    /**
     * The estimate for generating with the model: its weights, the adapter of {@code lora} (null for none) as a loaded
     * one holds it (values and gradients, beside the file's tensors while they are read), and the key/value cache of
     * {@code capacity} tokens with its scratch, as {@link CausalLanguageModel#kvCacheBytes} counts it — a generation
     * allocates nothing else of size.
     */
    public static MemoryEstimate forGeneration(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora,
                                               Quantization quantization, int capacity) throws IOException {
        return loaded(modelDirectory, config, lora, quantization, CausalLanguageModel.kvCacheBytes(config, lora, capacity));
    }

    /**
     * The estimate for forward passes alone over batches of {@code batch} sequences of {@code seqLen} tokens (an
     * evaluation, a held-out loss): the weights, the adapter of {@code lora} (null for none) as a loaded one holds it,
     * and the workspace {@link CausalLanguageModel#forwardWorkspaceBytes} counts — they allocate nothing else of size.
     */
    public static MemoryEstimate forForwardPasses(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora,
                                                  Quantization quantization, int batch, int seqLen) throws IOException {
        return loaded(modelDirectory, config, lora, quantization,
                CausalLanguageModel.forwardWorkspaceBytes(config, lora, batch, seqLen));
    }

    /**
     * A model loaded to run, not to train: its weights, a loaded adapter's values and gradients (beside the file's
     * tensors while they are read), and {@code activations}.
     */
    private static MemoryEstimate loaded(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora,
                                         Quantization quantization, long activations) throws IOException {
        ModelLayout layout = ModelLayout.of(config);
        long adapter = 0;
        if (lora != null) {
            for (LoraTarget target : LoraTargets.select(layout, lora)) {
                adapter += 3L * 4 * target.rank() * (target.in() + target.out());
            }
        }
        return new MemoryEstimate(CheckpointWeights.footprint(modelDirectory, layout, quantization), adapter, activations,
                false);
    }

    /**
     * The estimate for a training step, with gradient checkpointing where {@code gradientCheckpointing}
     * says so, or — when it is null — only where the step would not fit without it (see {@link #fits()}).
     *
     * @param weightsLoaded the weights are in memory already (a service's cached base): only the adapter
     *                      and the activations are still to be allocated
     */
    public static MemoryEstimate forTraining(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora,
                                             Quantization quantization, int batch, int seqLen,
                                             Boolean gradientCheckpointing, boolean weightsLoaded) throws IOException {
        MemoryEstimate plain = of(modelDirectory, config, lora, quantization, batch, seqLen,
                Boolean.TRUE.equals(gradientCheckpointing));
        if (weightsLoaded) {
            plain = new MemoryEstimate(new CheckpointWeights.Footprint(0, 0, 0, plain.weights.parameters()),
                    plain.adapter, plain.activations, plain.gradientCheckpointing);
        }
        return gradientCheckpointing != null || plain.fits() ? plain
                : forTraining(modelDirectory, config, lora, quantization, batch, seqLen, true, weightsLoaded);
    }

    private static MemoryEstimate of(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora,
                                     Quantization quantization, int batch, int seqLen,
                                     boolean gradientCheckpointing) throws IOException {
        ModelLayout layout = ModelLayout.of(config);
        CheckpointWeights.Footprint footprint = CheckpointWeights.footprint(modelDirectory, layout, quantization);
        long rows = (long) batch * seqLen;
        long adapter = 0;
        long adaptedInputs = 0;
        if (lora != null) {
            for (LoraTarget target : LoraTargets.select(layout, lora)) {
                adapter += 4L * 4 * target.rank() * (target.in() + target.out());
                // Each adapted module keeps, in every block whether checkpointed or not, its input after dropout
                // (and the mask's bits) for A's gradient, and its projection u and u's gradient.
                adaptedInputs += LoRALinear.activationBytes(rows, target.in(), target.rank(), lora.loraDropout());
            }
        }
        long hidden = config.hiddenSize();
        long inner = layout.linearModules().stream().filter(module -> !module.outputLayer())
                .mapToLong(module -> Math.max(module.in(), module.out())).max().orElse(4 * hidden);
        long perLayer = 4L * rows * (16 * hidden + 4 * inner) + 4L * batch * config.numHeads() * seqLen * seqLen * 2;
        long logits = 4L * rows * config.vocabSize() * 2;
        long blockInputs = 4L * (config.numLayers() + 1) * rows * hidden;
        long activations = adaptedInputs + logits
                + (gradientCheckpointing ? blockInputs + perLayer : config.numLayers() * perLayer);
        return new MemoryEstimate(footprint, adapter, activations, gradientCheckpointing);
    }

    /** Whether the heap and the memory outside it hold what the estimate needs, now. */
    public boolean fits() {
        return Resources.heapHolds(heapBytes()) && weights.nativeBytes() <= Resources.memoryAvailable();
    }

    public long heapBytes() {
        return weights.heapBytes() + adapter + activations + BASELINE;
    }

    /**
     * The maximum heap (-Xmx) for a JVM that is to hold {@code needed} bytes on its heap: a quarter more and
     * {@value #COLLECTOR_ROOM_MIB} MiB, so that the collector has room to copy into and does not run back to back
     * (G1 also rounds each array of a few MiB up to whole regions), at least 512 MiB, and never above {@code
     * ceiling} (what the machine allows; a command that then does not fit says so itself).
     */
    public static long heapLimit(long needed, long ceiling) {
        return Math.min(ceiling, Math.max(SMALLEST_HEAP, needed + needed / 4 + (COLLECTOR_ROOM_MIB << 20)));
    }

    /**
     * The options of {@link #require} followed, where the weights sit on the heap (a checkpoint stored in float32), by
     * the same model stored in bf16, whose linear weights would be mapped from the file instead.
     */
    public String optionsWithBf16(String options) {
        return weights.heapBytes() > weights.mappedBytes()
                ? options + ", the model stored in bf16 (its linear weights are then mapped, not on the heap)" : options;
    }

    /**
     * Ends the command with one line when the estimate does not fit the heap or the memory outside it.
     *
     * @param options what the command could be run with instead, e.g. "--quantize nf4, a smaller --batch-size"
     */
    public void require(String options) throws Resources.InsufficientResourcesException {
        Resources.requireHeap(heapBytes(), Resources.size(weights.heapBytes()) + " float32 weights, "
                + Resources.size(activations) + " activations, " + Resources.size(adapter) + " adapter state",
                "try " + options + " or " + Resources.LARGER_HEAP);
        if (weights.nativeBytes() > 0) {
            Resources.requireMemory(weights.nativeBytes(), "the quantized weights",
                    "give it more memory (a larger machine or container limit); nf4 is the smallest quantization");
        }
    }
}
