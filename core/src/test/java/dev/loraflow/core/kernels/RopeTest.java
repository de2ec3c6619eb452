package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.assertGradient;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.gaussianDoubles;
import static dev.loraflow.core.kernels.KernelChecks.numericGradient;
import static dev.loraflow.core.kernels.KernelChecks.weightedSum;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class RopeTest {

    private static final double THETA = 10_000;

    /** Left-padded style positions: each sequence starts at its own offset, some repeat. */
    private static int[] positions(Random random, int batch, int seqLen, int maxPositions) {
        int[] positions = new int[batch * seqLen];
        for (int b = 0; b < batch; b++) {
            int start = random.nextInt(Math.max(1, maxPositions - seqLen + 1));
            for (int t = 0; t < seqLen; t++) {
                positions[b * seqLen + t] = Math.min(maxPositions - 1, start + t);
            }
        }
        return positions;
    }

    @Test
    void referenceBackwardMatchesFiniteDifferences() {
        Random random = new Random(3);
        int b = 2;
        int t = 5;
        int h = 3;
        for (int d : new int[] {4, 6}) {
            RopeTable table = RopeTable.create(16, d, THETA);
            int[] positions = positions(random, b, t, 16);
            double[] x = gaussianDoubles(random, b * t * h * d, 0, 1);
            double[] g = gaussianDoubles(random, x.length, 0, 1);
            double[] dx = new double[x.length];
            RopeReference.backward(g, 0, positions, 0, table, dx, 0, b, t, h);
            double[] numeric = numericGradient(x, () -> {
                double[] y = new double[x.length];
                RopeReference.forward(x, 0, positions, 0, table, y, 0, b, t, h);
                return weightedSum(y, g);
            });
            assertGradient("rope dx, D=" + d, dx, numeric);
        }
    }

    /**
     * Float kernel against the double reference, tolerance {@link KernelChecks#FLOAT_RTOL} = 1e-5
     * relative to ‖expected‖∞; the table's float rounding of cos/sin at positions up to 4095 is
     * included. D = 64 and 128 fill whole vectors per half, D = 6 and 34 leave tails.
     */
    @ParameterizedTest(name = "B={0} T={1} H={2} D={3}")
    @CsvSource({"1, 1, 12, 64", "2, 17, 12, 64", "2, 17, 8, 128", "3, 5, 2, 6", "2, 9, 3, 34"})
    void floatMatchesReference(int b, int t, int h, int d) {
        Random random = new Random(11L * t + d);
        int maxPositions = 4096;
        RopeTable table = RopeTable.create(maxPositions, d, THETA);
        int[] positions = positions(random, b, t, maxPositions);
        int offset = 5;
        int n = b * t * h * d;
        float[] x = gaussian(random, offset + n, 0, 1);
        float[] dy = gaussian(random, offset + n, 0, 1);
        float[] y = new float[offset + n];
        float[] dx = new float[offset + n];
        Rope.forward(x, offset, positions, 0, table, y, offset, b, t, h);
        Rope.backward(dy, offset, positions, 0, table, dx, offset, b, t, h);

        double[] expectedY = new double[n];
        double[] expectedDx = new double[n];
        RopeReference.forward(Arrays.copyOfRange(widen(x), offset, offset + n), 0, positions, 0, table, expectedY, 0, b, t, h);
        RopeReference.backward(Arrays.copyOfRange(widen(dy), offset, offset + n), 0, positions, 0, table, expectedDx, 0, b, t, h);
        assertCloseToReference("y", expectedY, Arrays.copyOfRange(y, offset, offset + n));
        assertCloseToReference("dx", expectedDx, Arrays.copyOfRange(dx, offset, offset + n));

        float[] inPlace = x.clone();
        Rope.forward(inPlace, offset, positions, 0, table, inPlace, offset, b, t, h);
        assertArrayEquals(Arrays.copyOfRange(y, offset, offset + n), Arrays.copyOfRange(inPlace, offset, offset + n), "in place");
    }

    @Test
    void positionZeroIsTheIdentity() {
        Random random = new Random(4);
        RopeTable table = RopeTable.create(8, 64, THETA);
        float[] x = gaussian(random, 3 * 2 * 64, 0, 1);
        float[] y = new float[x.length];
        Rope.forward(x, 0, new int[3], 0, table, y, 0, 1, 3, 2);
        assertArrayEquals(x, y);
    }

    @Test
    void rotationPreservesTheNormOfEachPair() {
        Random random = new Random(6);
        int d = 34;
        int half = d / 2;
        RopeTable table = RopeTable.create(2048, d, THETA);
        int[] positions = {1, 17, 300, 2047};
        float[] x = gaussian(random, positions.length * d, 0, 1);
        float[] y = new float[x.length];
        Rope.forward(x, 0, positions, 0, table, y, 0, 1, positions.length, 1);
        for (int token = 0; token < positions.length; token++) {
            for (int i = 0; i < half; i++) {
                int first = token * d + i;
                double before = Math.hypot(x[first], x[first + half]);
                double after = Math.hypot(y[first], y[first + half]);
                assertEquals(before, after, 1e-6 * before, "pair " + i + " of token " + token);
            }
        }
    }

    /**
     * D = 4, θ = 10000, position 1, x = [1, 2, 3, 4]: the pairs are (x0, x2) = (1, 3) at angle
     * 1·10000^0 = 1 and (x1, x3) = (2, 4) at angle 1·10000^(−2/4) = 0.01, so
     * y0 = 1·cos 1 − 3·sin 1     = 0.5403023 − 2.5244130 = −1.9841106485555495,
     * y1 = 2·cos 0.01 − 4·sin 0.01 = 1.9999000 − 0.0399993 = 1.959900667496664,
     * y2 = 3·cos 1 + 1·sin 1     = 1.6209069 + 0.8414710 = 2.4623779024123156,
     * y3 = 4·cos 0.01 + 2·sin 0.01 = 3.9998000 + 0.0199997 = 4.019799668334994.
     */
    @Test
    void knownValueAtPositionOne() {
        double[] expected = {-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994};
        RopeTable table = RopeTable.create(2, 4, THETA);
        double[] reference = new double[4];
        RopeReference.forward(new double[] {1, 2, 3, 4}, 0, new int[] {1}, 0, table, reference, 0, 1, 1, 1);
        assertArrayEquals(expected, reference, 1e-15);
        float[] y = new float[4];
        Rope.forward(new float[] {1, 2, 3, 4}, 0, new int[] {1}, 0, table, y, 0, 1, 1, 1);
        assertArrayEquals(expected, widen(y), 1e-6);
    }

    @Test
    void backwardOfTheForwardOutputRecoversTheInput() {
        Random random = new Random(8);
        int b = 2;
        int t = 7;
        int h = 4;
        int d = 64;
        RopeTable table = RopeTable.create(1024, d, THETA);
        int[] positions = positions(random, b, t, 1024);
        float[] x = gaussian(random, b * t * h * d, 0, 1);
        float[] y = new float[x.length];
        Rope.forward(x, 0, positions, 0, table, y, 0, b, t, h);
        Rope.backward(y, 0, positions, 0, table, y, 0, b, t, h);
        assertArrayEquals(x, y, 1e-6f);

        double[] xd = widen(x);
        double[] yd = new double[x.length];
        RopeReference.forward(xd, 0, positions, 0, table, yd, 0, b, t, h);
        RopeReference.backward(yd, 0, positions, 0, table, yd, 0, b, t, h);
        assertArrayEquals(xd, yd, 1e-14);
    }

    @Test
    void rejectsBadArguments() {
        IllegalArgumentException odd = assertThrows(IllegalArgumentException.class, () -> RopeTable.create(8, 5, THETA));
        assertTrue(odd.getMessage().contains("even"), odd.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new RopeTable(8, 4, THETA, new float[16], new float[15]));
        RopeTable table = RopeTable.create(8, 4, THETA);
        IllegalArgumentException small = assertThrows(IllegalArgumentException.class,
                () -> Rope.forward(new float[7], 0, new int[2], 0, table, new float[8], 0, 1, 2, 1));
        assertTrue(small.getMessage().startsWith("x:"), small.getMessage());
        IllegalArgumentException far = assertThrows(IllegalArgumentException.class,
                () -> Rope.forward(new float[8], 0, new int[] {0, 8}, 0, table, new float[8], 0, 1, 2, 1));
        assertTrue(far.getMessage().contains("position 8"), far.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> Rope.backward(new float[8], 0, new int[1], 0, table, new float[8], 0, 1, 2, 1));
        assertThrows(IllegalArgumentException.class,
                () -> RopeReference.forward(new double[8], 0, new int[] {-1, 0}, 0, table, new double[8], 0, 1, 2, 1));
    }
}
