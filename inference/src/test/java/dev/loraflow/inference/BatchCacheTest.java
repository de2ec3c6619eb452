package dev.loraflow.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.loraflow.onnx.GraphNames;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The cache's rows as the graph reads them, past and present one buffer, its buffers coming from malloc (not zeroed). */
class BatchCacheTest {

    private static final int LAYERS = 2;
    private static final int HEADS = 3;
    private static final int HEAD_DIM = 4;

    private final OrtEnvironment env = OnnxRuntimeNatives.environment();

    @Test
    void rowsKeepTheirTokensInTheirFirstSlotsThroughLeavingJoiningAndGrowth() throws OrtException {
        BatchCache batch = new BatchCache(LAYERS, HEADS, HEAD_DIM);
        batch.reset(3);
        // A prefill of three rows of 2 tokens: row r's slot s holds 100·r + s.
        write(batch, new int[] {0, 0, 0}, 2);
        batch.remove(0, 2);  // row 2 takes row 0's place
        assertRows(batch, new int[] {200, 100}, new int[] {2, 2});

        BatchCache prompt = new BatchCache(LAYERS, HEADS, HEAD_DIM);
        prompt.reset(1);
        write(prompt, new int[] {0}, 5);
        // The joining row is longer than the batch's slots: the buffers grow, the rows kept.
        batch.append(prompt, 0, 5);
        assertTrue(batch.slots() >= 6, "room for the joining row's next token");
        assertRows(batch, new int[] {200, 100, 0}, new int[] {2, 2, 5});
    }

    @Test
    void pastAndPresentAreOneBuffer() throws OrtException {
        BatchCache batch = new BatchCache(LAYERS, HEADS, HEAD_DIM);
        batch.reset(2);
        Map<String, OnnxTensor> inputs = new HashMap<>();
        Map<String, OnnxTensor> outputs = new HashMap<>();
        batch.bind(env, 7, inputs, outputs);
        try {
            for (int layer = 0; layer < LAYERS; layer++) {
                OnnxTensor past = inputs.get(GraphNames.pastKey(layer));
                OnnxTensor present = outputs.get(GraphNames.presentKey(layer));
                assertEquals(2, past.getInfo().getShape()[0]);
                assertTrue(past.getInfo().getShape()[2] >= 7);
                assertEquals(Arrays.toString(past.getInfo().getShape()),
                        Arrays.toString(present.getInfo().getShape()));
                FloatBuffer pastBuffer = past.getBufferRef().map(FloatBuffer.class::cast).orElseThrow();
                FloatBuffer presentBuffer = present.getBufferRef().map(FloatBuffer.class::cast).orElseThrow();
                presentBuffer.put(5, 42f);
                assertEquals(42f, pastBuffer.get(5), "a write to present.* is in past.*");
            }
        } finally {
            inputs.values().forEach(OnnxTensor::close);
            outputs.values().forEach(OnnxTensor::close);
        }
    }

    /** What a run does to the cache: row r's new tokens after its {@code cached[r]} ones, slot s holding 100·r + s. */
    private void write(BatchCache cache, int[] cached, int added) throws OrtException {
        int total = Arrays.stream(cached).max().orElseThrow() + added;
        Map<String, OnnxTensor> inputs = new HashMap<>();
        Map<String, OnnxTensor> outputs = new HashMap<>();
        cache.bind(env, total, inputs, outputs);
        try {
            for (OnnxTensor present : outputs.values()) {
                FloatBuffer buffer = present.getBufferRef().map(FloatBuffer.class::cast).orElseThrow();
                int slots = Math.toIntExact(present.getInfo().getShape()[2]);
                for (int row = 0; row < cache.rows(); row++) {
                    for (int head = 0; head < HEADS; head++) {
                        for (int slot = cached[row]; slot < cached[row] + added; slot++) {
                            for (int d = 0; d < HEAD_DIM; d++) {
                                buffer.put(((row * HEADS + head) * slots + slot) * HEAD_DIM + d, 100f * row + slot);
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

    /** Row b's first tokens[b] slots hold first[b] + s in every tensor, as past.* shows them. */
    private void assertRows(BatchCache cache, int[] first, int[] tokens) throws OrtException {
        assertEquals(first.length, cache.rows());
        Map<String, OnnxTensor> inputs = new HashMap<>();
        Map<String, OnnxTensor> outputs = new HashMap<>();
        cache.bind(env, 1, inputs, outputs);
        try {
            for (var entry : inputs.entrySet()) {
                FloatBuffer past = entry.getValue().getFloatBuffer();
                int slots = Math.toIntExact(entry.getValue().getInfo().getShape()[2]);
                for (int row = 0; row < first.length; row++) {
                    for (int head = 0; head < HEADS; head++) {
                        for (int slot = 0; slot < tokens[row]; slot++) {
                            for (int d = 0; d < HEAD_DIM; d++) {
                                assertEquals(first[row] + slot, past.get(((row * HEADS + head) * slots + slot) * HEAD_DIM + d),
                                        entry.getKey() + " row " + row + " slot " + slot);
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
}
