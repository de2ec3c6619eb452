package dev.loraflow.inference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.loraflow.onnx.FloatTensor;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The stacked feeds of rows on different adapters, on one module with in = 2 and out = 3. */
class LoraRowsTest {

    private static final List<String> INPUTS = List.of("lora.m.A", "lora.m.B", "lora.m.scaling");

    private static Map<String, FloatTensor> adapter(float[] a, float[] b, float scaling) {
        int rank = a.length / 2;
        float[] scalings = new float[rank];
        Arrays.fill(scalings, scaling);
        return Map.of("lora.m.A", new FloatTensor(a, new long[] {rank, 2}), "lora.m.B", new FloatTensor(b, new long[] {3, rank}),
                "lora.m.scaling", new FloatTensor(scalings, new long[] {1, 1, rank}));
    }

    @Test
    void rowsOfOneAdapterGetItsFeedsAsTheyAre() {
        Map<String, FloatTensor> only = adapter(new float[] {1, 2}, new float[] {3, 4, 5}, 2);
        assertSame(only, LoraRows.feeds(INPUTS, List.of(only, only, only)));
    }

    @Test
    void adaptersStackAlongTheRankAndEachRowScalesOnlyItsOwnRanks() {
        Map<String, FloatTensor> first = adapter(new float[] {1, 2}, new float[] {3, 4, 5}, 2);
        Map<String, FloatTensor> second = adapter(new float[] {6, 7, 8, 9}, new float[] {10, 11, 12, 13, 14, 15}, 0.5f);
        Map<String, FloatTensor> base = adapter(new float[0], new float[0], 0);

        Map<String, FloatTensor> feeds = LoraRows.feeds(INPUTS, List.of(second, first, base, second));

        FloatTensor a = feeds.get("lora.m.A");
        assertArrayEquals(new long[] {3, 2}, a.shape());
        assertArrayEquals(new float[] {6, 7, 8, 9, 1, 2}, a.values());
        FloatTensor b = feeds.get("lora.m.B");
        assertArrayEquals(new long[] {3, 3}, b.shape());
        assertArrayEquals(new float[] {10, 11, 3, 12, 13, 4, 14, 15, 5}, b.values());
        FloatTensor scaling = feeds.get("lora.m.scaling");
        assertArrayEquals(new long[] {4, 1, 3}, scaling.shape());
        assertArrayEquals(new float[] {0.5f, 0.5f, 0, 0, 0, 2, 0, 0, 0, 0.5f, 0.5f, 0}, scaling.values());
    }
}
