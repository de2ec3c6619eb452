package dev.loraflow.onnx;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.TensorInfo;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/** The feeds of an un-merged graph's adapter inputs, {@code lora.<PEFT module path>.A/.B/.scaling}. */
public final class LoraInputs {

    private static final String SCALING = ".scaling";

    private LoraInputs() {}

    /** A, B and scaling (every row alike, [1, 1, r]) of each of the adapter's modules, under the graph's input names. */
    public static Map<String, FloatTensor> of(PeftAdapter adapter) {
        Map<String, FloatTensor> inputs = new LinkedHashMap<>();
        for (LoraWeights module : adapter.modules().values()) {
            String path = module.modulePath();
            inputs.put(DecoderGraph.loraA(path), new FloatTensor(module.a(), new long[] {module.r(), module.inFeatures()}));
            inputs.put(DecoderGraph.loraB(path), new FloatTensor(module.b(), new long[] {module.outFeatures(), module.r()}));
            float[] scaling = new float[module.r()];
            Arrays.fill(scaling, (float) adapter.config().scaling(path));
            inputs.put(DecoderGraph.loraScaling(path), new FloatTensor(scaling, new long[] {1, 1, module.r()}));
        }
        return inputs;
    }

    /**
     * {@code given} plus, for every LoRA input of the session it lacks, a rank-0 adapter: the free rank
     * dimension 0 (A [0, in], B [out, 0], scaling [1, 1, 0]: an update of zeros).
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
            int elements = 1;
            for (int i = 0; i < shape.length; i++) {
                shape[i] = Math.max(shape[i], 0);
                elements *= (int) shape[i];
            }
            if (input.getKey().endsWith(SCALING)) {
                shape[0] = 1; // one row for all, so that it broadcasts over any batch
            }
            inputs.put(input.getKey(), new FloatTensor(new float[elements], shape));
        }
        return inputs;
    }
}
