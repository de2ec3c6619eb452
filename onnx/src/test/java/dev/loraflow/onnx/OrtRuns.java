package dev.loraflow.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelConfig;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** One-off runs of a graph and of the Java model for tests that compare outputs directly. */
final class OrtRuns {

    private OrtRuns() {}

    /** The logits [batch, seq, vocab] of one prefill with an empty past; positions from the mask as Transformers makes them. */
    static float[] prefillLogits(Path model, ModelConfig config, long[][] ids, long[][] mask,
                                 Map<String, FloatTensor> extraInputs) throws Exception {
        OrtEnvironment env = OnnxRuntimeNatives.environment();
        int batch = ids.length;
        int seq = ids[0].length;
        long[] flatIds = new long[batch * seq];
        long[] flatMask = new long[batch * seq];
        long[] positions = new long[batch * seq];
        for (int b = 0; b < batch; b++) {
            long position = 0;
            for (int t = 0; t < seq; t++) {
                flatIds[b * seq + t] = ids[b][t];
                flatMask[b * seq + t] = mask[b][t];
                positions[b * seq + t] = mask[b][t] == 1 ? position++ : 1;
            }
        }
        List<OnnxTensor> tensors = new ArrayList<>();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(1);
            try (OrtSession session = env.createSession(model.toString(), options)) {
                Map<String, OnnxTensor> inputs = new HashMap<>();
                long[] shape = {batch, seq};
                inputs.put(GraphNames.INPUT_IDS, track(tensors, OnnxTensor.createTensor(env, LongBuffer.wrap(flatIds), shape)));
                inputs.put(GraphNames.ATTENTION_MASK, track(tensors, OnnxTensor.createTensor(env, LongBuffer.wrap(flatMask), shape)));
                inputs.put(GraphNames.POSITION_IDS, track(tensors, OnnxTensor.createTensor(env, LongBuffer.wrap(positions), shape)));
                long[] pastShape = {batch, OnnxVerifier.kvHeads(config), 0, config.headDim()};
                for (int layer = 0; layer < config.numLayers(); layer++) {
                    inputs.put(GraphNames.pastKey(layer), track(tensors, OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape)));
                    inputs.put(GraphNames.pastValue(layer), track(tensors, OnnxTensor.createTensor(env, FloatBuffer.allocate(0), pastShape)));
                }
                for (var extra : LoraInputs.withDefaults(session.getInputInfo(), extraInputs).entrySet()) {
                    inputs.put(extra.getKey(), track(tensors, OnnxTensor.createTensor(env,
                            FloatBuffer.wrap(extra.getValue().values()), extra.getValue().shape())));
                }
                try (OrtSession.Result result = session.run(inputs)) {
                    FloatBuffer logits = ((OnnxTensor) result.get(GraphNames.LOGITS).orElseThrow()).getFloatBuffer();
                    float[] values = new float[logits.remaining()];
                    logits.get(values);
                    return values;
                }
            }
        } finally {
            tensors.forEach(OnnxTensor::close);
        }
    }

    private static OnnxTensor track(List<OnnxTensor> tensors, OnnxTensor tensor) {
        tensors.add(tensor);
        return tensor;
    }

    /** Full-sequence logits [seq, vocab] of the Java model, a copy. */
    static float[] javaLogits(CausalLanguageModel model, int[] ids) {
        CausalLanguageModel.Workspace ws = model.newWorkspace(1, ids.length);
        model.forward(ws, ids, null, false, 0);
        return ws.logits().clone();
    }
}
