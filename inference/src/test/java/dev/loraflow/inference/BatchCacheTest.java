package dev.loraflow.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.loraflow.onnx.GraphNames;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import java.nio.FloatBuffer;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The cache's rows as the graph reads them, its buffers coming from malloc (not zeroed). */
class BatchCacheTest {

    private static final int LAYERS = 2;
    private static final int HEADS = 3;
    private static final int HEAD_DIM = 4;

    private final OrtEnvironment env = OnnxRuntimeNatives.environment();

    @Test
    void aJoiningShorterRowReadsZerosInItsPaddingWhereALeftRowLeftNaN() throws OrtException {
        BatchCache batch = new BatchCache(LAYERS, HEADS, HEAD_DIM);
        batch.reset(2);
        // A prefill of two rows of 6 tokens and a step: row 0 holds 1s, row 1 NaN (what a departed row may leave).
        Fill ones = (row, slot) -> row == 0 ? 1f : Float.NaN;
        run(batch, 6, ones);
        run(batch, 1, ones);
        batch.remove(1);

        BatchCache prompt = new BatchCache(LAYERS, HEADS, HEAD_DIM);
        prompt.reset(1);
        run(prompt, 4, (row, slot) -> 10f + slot);
        batch.append(prompt, 0, 4, new int[] {7});

        Map<String, OnnxTensor> inputs = new HashMap<>();
        Map<String, OnnxTensor> outputs = new HashMap<>();
        batch.bind(env, 1, inputs, outputs);
        try {
            for (int layer = 0; layer < LAYERS; layer++) {
                for (String name : new String[] {GraphNames.pastKey(layer), GraphNames.pastValue(layer)}) {
                    FloatBuffer past = inputs.get(name).getFloatBuffer();
                    for (int head = 0; head < HEADS; head++) {
                        for (int slot = 0; slot < 7; slot++) {
                            for (int d = 0; d < HEAD_DIM; d++) {
                                float row0 = past.get(((0 * HEADS + head) * 7 + slot) * HEAD_DIM + d);
                                float row1 = past.get(((1 * HEADS + head) * 7 + slot) * HEAD_DIM + d);
                                assertEquals(1f, row0, name + " row 0 slot " + slot);
                                // Three slots of padding, then the prompt's 4 tokens.
                                assertEquals(slot < 3 ? 0f : 10f + slot - 3, row1, name + " row 1 slot " + slot);
                            }
                        }
                    }
                }
            }
        } finally {
            inputs.values().forEach(OnnxTensor::close);
            outputs.values().forEach(OnnxTensor::close);
        }
    }

    private interface Fill {
        float value(int row, int slot);
    }

    /** What a run of {@code added} tokens does to the cache: ONNX Runtime writes every slot of present.*. */
    private void run(BatchCache cache, int added, Fill fill) throws OrtException {
        int slots = cache.length() + added;
        Map<String, OnnxTensor> inputs = new HashMap<>();
        Map<String, OnnxTensor> outputs = new HashMap<>();
        cache.bind(env, added, inputs, outputs);
        try {
            for (OnnxTensor present : outputs.values()) {
                FloatBuffer buffer = present.getBufferRef().map(FloatBuffer.class::cast).orElseThrow();
                for (int row = 0; row < cache.rows(); row++) {
                    for (int head = 0; head < HEADS; head++) {
                        for (int slot = 0; slot < slots; slot++) {
                            for (int d = 0; d < HEAD_DIM; d++) {
                                buffer.put(((row * HEADS + head) * slots + slot) * HEAD_DIM + d, fill.value(row, slot));
                            }
                        }
                    }
                }
            }
        } finally {
            inputs.values().forEach(OnnxTensor::close);
            outputs.values().forEach(OnnxTensor::close);
        }
        cache.advance(added);
    }
}
