package dev.loraflow.core.train;

import dev.loraflow.core.io.Resources;
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
 * activations), plus the logits and their gradient; it errs high so that a run that passes the check fits.
 *
 * @param weights   the base's footprint
 * @param adapter   LoRA parameters, gradients and moments, bytes on the heap
 * @param activations bytes on the heap for one micro-batch
 */
public record MemoryEstimate(CheckpointWeights.Footprint weights, long adapter, long activations) {

    /** JIT, buffers, tokenizer and the rest of a running JVM. */
    private static final long BASELINE = 64L << 20;

    /**
     * The estimate for training the model on batches of {@code batch × seqLen} or, with {@code training}
     * false, for generating up to {@code seqLen} tokens (a key/value cache of that many, one prompt's
     * prefill at a time).
     */
    public static MemoryEstimate of(Path modelDirectory, ModelConfig config, LoraAdapterConfig lora, Quantization quantization,
                                    int batch, int seqLen, boolean training) throws IOException {
        ModelLayout layout = ModelLayout.of(config);
        CheckpointWeights.Footprint footprint = CheckpointWeights.footprint(modelDirectory, layout, quantization);
        long adapter = 0;
        if (lora != null) {
            for (LoraTarget target : LoraTargets.select(layout, lora)) {
                adapter += 4L * 4 * target.rank() * (target.in() + target.out());
            }
        }
        long rows = (long) batch * seqLen;
        long hidden = config.hiddenSize();
        long inner = layout.linearModules().stream().filter(module -> !module.outputLayer())
                .mapToLong(module -> Math.max(module.in(), module.out())).max().orElse(4 * hidden);
        long perLayer = 4 * rows * (16 * hidden + 4 * inner) + 4L * batch * config.numHeads() * seqLen * seqLen * 2;
        long logits = 4 * rows * config.vocabSize() * 2;
        long keysAndValues = 2L * 4 * config.numLayers() * hidden * rows;
        long activations = training ? config.numLayers() * perLayer + logits : keysAndValues + perLayer + logits;
        return new MemoryEstimate(footprint, adapter, activations);
    }

    public long heapBytes() {
        return weights.heapBytes() + adapter + activations + BASELINE;
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
            Resources.requireMemory(weights.nativeBytes(), "the quantized weights", "try --quantize nf4 or a machine with more memory");
        }
    }
}
