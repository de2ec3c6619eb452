package dev.loraflow.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class DropoutTest {

    @ParameterizedTest(name = "n={0} p={1}")
    @CsvSource({"1, 0.5", "15, 0.1", "17, 0.9", "64, 0.05", "1000, 0.3", "200003, 0.25", "5, 0"})
    void vectorPathMatchesTheScalarDefinitionElementByElement(int n, float p) {
        Random random = new Random(n);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) random.nextGaussian();
        }
        long key = 0xC0FFEE + n;
        float[] out = new float[n];
        long[] mask = new long[Dropout.maskWords(n)];
        Dropout.forward(x, out, n, p, key, mask);
        float scale = 1f / (1f - p);
        int threshold = Dropout.threshold(p);
        float[] dout = new float[n];
        float[] dx = new float[n];
        for (int i = 0; i < n; i++) {
            boolean kept = Dropout.kept(key, i, threshold);
            assertEquals(kept ? x[i] * scale : 0f, out[i], "element " + i);
            assertEquals(kept, ((mask[i >>> 6] >>> (i & 63)) & 1) != 0, "mask bit " + i);
            dout[i] = (float) random.nextGaussian();
            dx[i] = 1f;
        }
        Dropout.backward(dout, dx, n, p, mask, true);
        for (int i = 0; i < n; i++) {
            boolean kept = Dropout.kept(key, i, threshold);
            assertEquals(1f + (kept ? dout[i] * scale : 0f), dx[i], "gradient " + i);
        }
    }

    @Test
    void keepsTheExpectedFractionAndDependsOnTheKey() {
        int n = 1 << 20;
        float[] ones = new float[n];
        java.util.Arrays.fill(ones, 1f);
        float[] first = new float[n];
        float[] second = new float[n];
        Dropout.forward(ones, first, n, 0.2f, 1, new long[Dropout.maskWords(n)]);
        Dropout.forward(ones, second, n, 0.2f, 2, new long[Dropout.maskWords(n)]);
        int kept = 0;
        int same = 0;
        for (int i = 0; i < n; i++) {
            kept += first[i] != 0f ? 1 : 0;
            same += (first[i] != 0f) == (second[i] != 0f) ? 1 : 0;
        }
        assertEquals(0.8, kept / (double) n, 0.003);
        // two independent masks agree where both keep (0.64) or both drop (0.04)
        assertEquals(0.68, same / (double) n, 0.003);
        float[] again = new float[n];
        Dropout.forward(ones, again, n, 0.2f, 1, new long[Dropout.maskWords(n)]);
        assertArrayEquals(first, again);
    }

    @Test
    void rejectsBadProbabilityAndShortMask() {
        assertThrows(IllegalArgumentException.class, () -> Dropout.forward(new float[4], new float[4], 4, 1f, 0, new long[1]));
        assertThrows(IllegalArgumentException.class, () -> Dropout.forward(new float[4], new float[4], 4, -0.1f, 0, new long[1]));
        assertThrows(IllegalArgumentException.class, () -> Dropout.forward(new float[65], new float[65], 65, 0.5f, 0, new long[1]));
    }
}
