package dev.loraflow.onnx;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.TensorInfo;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The feeds of an un-merged graph's adapter inputs, {@code lora.<PEFT module path>.A/.B/.scaling} and
 * {@code lora.slot}: one adapter in slot 0 for every row.
 */
public final class LoraInputs {

    private LoraInputs() {}

    /** The slot input's name. */
    public static final String SLOT = DecoderGraph.LORA_SLOT;

    /**
     * A [1, r, in], B [1, out, r] and scaling [1, 1, 1] of each of the adapter's modules (one slot), under the
     * graph's input names; {@link #withDefaults} adds the slot.
     */
    public static Map<String, FloatTensor> of(PeftAdapter adapter) {
        Map<String, FloatTensor> inputs = new LinkedHashMap<>();
        for (LoraWeights module : adapter.modules().values()) {
            String path = module.modulePath();
            inputs.put(DecoderGraph.loraA(path), new FloatTensor(module.a(), new long[] {1, module.r(), module.inFeatures()}));
            inputs.put(DecoderGraph.loraB(path), new FloatTensor(module.b(), new long[] {1, module.outFeatures(), module.r()}));
            inputs.put(DecoderGraph.loraScaling(path),
                    new FloatTensor(new float[] {(float) adapter.config().scaling(path)}, new long[] {1, 1, 1}));
        }
        return inputs;
    }

    /**
     * {@code given} plus, for every LoRA input of the session it lacks, one slot of a rank-0 adapter (A [1, 0, in],
     * B [1, out, 0], scaling [1, 1, 1] of 0: an update of zeros), and slot 0 for every row ({@code lora.slot} [1]).
     *
     * @param sessionInputs the session's {@code getInputInfo()}
     */
    public static Map<String, FloatTensor> withDefaults(Map<String, NodeInfo> sessionInputs, Map<String, FloatTensor> given) {
        Map<String, FloatTensor> inputs = new LinkedHashMap<>(given);
        for (var input : sessionInputs.entrySet()) {
            if (!input.getKey().startsWith(DecoderGraph.LORA_PREFIX) || inputs.containsKey(input.getKey())) {
                continue;
            }
            long[] shape = ((TensorInfo) input.getValue().getInfo()).getShape();
            shape[0] = 1; // one slot; for lora.slot one row for all, so that it broadcasts over any batch
            int elements = 1;
            for (int i = 0; i < shape.length; i++) {
                shape[i] = Math.max(shape[i], 0); // the free rank: 0
                elements *= (int) shape[i];
            }
            inputs.put(input.getKey(), new FloatTensor(new float[elements], shape));
        }
        return inputs;
    }
}
