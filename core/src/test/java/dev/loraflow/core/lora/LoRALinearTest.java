package dev.loraflow.core.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.kernels.Dropout;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.HalfMatrix;
import dev.loraflow.core.safetensors.HalfFloats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class LoRALinearTest {

    /** rows, in, out, rank, fanInFanOut, bias, rsLoRA, dropout. */
    static Stream<Arguments> shapes() {
        return Stream.of(
                Arguments.of(1, 5, 3, 1, false, true, false, 0f),
                Arguments.of(4, 3, 7, 8, false, false, false, 0f),
                Arguments.of(7, 17, 33, 4, true, true, false, 0f),
                Arguments.of(9, 31, 18, 16, false, true, true, 0f),
                Arguments.of(2, 33, 65, 2, true, false, true, 0f),
                Arguments.of(40, 48, 96, 8, false, true, false, 0.25f),
                Arguments.of(5, 19, 23, 3, true, true, false, 0.5f),
                Arguments.of(64, 100, 70, 8, false, false, false, 0.1f));
    }

    @ParameterizedTest(name = "rows={0} in={1} out={2} r={3} fanInFanOut={4} bias={5} rslora={6} dropout={7}")
    @MethodSource("shapes")
    void aBf16FrozenWeightGivesTheBitsOfItsFloat32Widening(int rows, int in, int out, int rank, boolean fanInFanOut,
                                                           boolean withBias, boolean rslora, float dropout) {
        Random random = new Random(rows * 1000L + in * 31L + out * 7L + rank);
        LoraSpec spec = new LoraSpec(rank, 2f * rank + 1f, dropout, rslora);
        float[] widened = gaussian(random, in * out);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment bf16 = arena.allocate(2L * widened.length);
            for (int i = 0; i < widened.length; i++) {
                short bits = HalfFloats.toBf16(widened[i]);
                bf16.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, bits);
                widened[i] = HalfFloats.fromBf16(bits);
            }
            float[] bias = withBias ? gaussian(random, out) : null;
            LoRALinear f32 = new LoRALinear("layer", in, out, widened, bias, fanInFanOut, spec, 42);
            FrozenMatrix frozen = new HalfMatrix(bf16, fanInFanOut ? in : out, fanInFanOut ? out : in, HalfMatrix.Format.BF16);
            LoRALinear half = new LoRALinear("layer", in, out, frozen, bias, fanInFanOut, spec, 42);
            fill(random, f32.loraB().value());
            System.arraycopy(f32.loraB().value(), 0, half.loraB().value(), 0, out * rank);
            float[] x = gaussian(random, rows * in);
            float[] dy = gaussian(random, rows * out);
            float[][] results = new float[2][];
            float[][] inputGrads = new float[2][];
            LoRALinear[] layers = {f32, half};
            for (int l = 0; l < 2; l++) {
                LoRALinear.Activations saved = layers[l].newActivations(rows);
                results[l] = new float[rows * out];
                layers[l].forward(x, results[l], rows, saved, true, 7);
                inputGrads[l] = new float[rows * in];
                layers[l].backward(x, dy, inputGrads[l], rows, saved, false);
            }
            assertArrayEquals(results[0], results[1], "y");
            assertArrayEquals(inputGrads[0], inputGrads[1], "dx");
            assertArrayEquals(f32.loraA().grad(), half.loraA().grad(), "dA");
            assertArrayEquals(f32.loraB().grad(), half.loraB().grad(), "dB");
            assertArrayEquals(widened, half.weight(), "the frozen weight widened");
            f32.merge();
            half.merge();
            assertArrayEquals(f32.weight(), half.weight(), "merged");
            half.unmerge();
            assertArrayEquals(widened, half.weight(), "unmerged back to the frozen weight");
            assertSame(frozen, half.frozenWeight());
        }
    }

    @ParameterizedTest(name = "rows={0} in={1} out={2} r={3} fanInFanOut={4} bias={5} rslora={6} dropout={7}")
    @MethodSource("shapes")
    void forwardAndBackwardMatchTheFormulaInDouble(int rows, int in, int out, int rank, boolean fanInFanOut,
                                                    boolean withBias, boolean rslora, float dropout) {
        Random random = new Random(rows * 1000L + in * 31L + out * 7L + rank);
        LoraSpec spec = new LoraSpec(rank, 2f * rank + 1f, dropout, rslora);
        LoRALinear layer = new LoRALinear("layer", in, out, gaussian(random, in * out), withBias ? gaussian(random, out) : null,
                fanInFanOut, spec, 42);
        fill(random, layer.loraB().value());
        float[] x = gaussian(random, rows * in);
        float[] dy = gaussian(random, rows * out);
        long key = 99;
        double[] keepScale = keepScale(rows * in, dropout, key);

        LoraReference reference = LoraReference.of(layer);
        double[] expectedY = reference.forward(toDouble(x), rows, keepScale);
        LoraReference.Gradients expected = reference.backward(toDouble(x), toDouble(dy), rows, keepScale);

        LoRALinear.Activations saved = layer.newActivations(rows);
        float[] y = new float[rows * out];
        layer.forward(x, y, rows, saved, true, key);
        float[] dx = new float[rows * in];
        layer.backward(x, dy, dx, rows, saved, false);

        assertClose(expectedY, y, "y");
        assertClose(expected.dx(), dx, "dx");
        assertClose(expected.dA(), layer.loraA().grad(), "dA");
        assertClose(expected.dB(), layer.loraB().grad(), "dB");
    }

    @ParameterizedTest(name = "rows={0} in={1} out={2} r={3} fanInFanOut={4} bias={5} rslora={6} dropout={7}")
    @MethodSource("shapes")
    void referenceGradientsMatchCentralFiniteDifferences(int rows, int in, int out, int rank, boolean fanInFanOut,
                                                          boolean withBias, boolean rslora, float dropout) {
        Random random = new Random(17L * rows + in + out + rank);
        LoRALinear layer = new LoRALinear("layer", in, out, gaussian(random, in * out), withBias ? gaussian(random, out) : null,
                fanInFanOut, new LoraSpec(rank, 3f, dropout, rslora), 7);
        fill(random, layer.loraB().value());
        LoraReference reference = LoraReference.of(layer);
        double[] x = toDouble(gaussian(random, rows * in));
        double[] g = toDouble(gaussian(random, rows * out));
        double[] keepScale = keepScale(rows * in, dropout, 5);
        LoraReference.Gradients analytic = reference.backward(x, g, rows, keepScale);
        // L = Σ y ⊙ g, so dL/dy = g
        java.util.function.DoubleSupplier loss = () -> dot(reference.forward(x, rows, keepScale), g);
        assertFiniteDifferences(x, analytic.dx(), loss, "dx");
        assertFiniteDifferences(reference.a(), analytic.dA(), loss, "dA");
        assertFiniteDifferences(reference.b(), analytic.dB(), loss, "dB");
    }

    @Test
    void theSeedsExampleMergedAndUnmergedAgreeWithTheLoraBranchActive() {
        // The seed document's layer: rank 16, lora_alpha 16, with B trained away from zero. Its un-merged
        // path returned linear(x) alone; the correct one adds s·B·A·x and equals the merged layer.
        int in = 64, out = 32, rows = 10;
        Random random = new Random(2025);
        LoRALinear layer = new LoRALinear("seed", in, out, gaussian(random, out * in), gaussian(random, out),
                false, new LoraSpec(16, 16f, 0.5f, false), 1);
        fill(random, layer.loraB().value());
        float[] x = gaussian(random, rows * in);
        LoRALinear.Activations saved = layer.newActivations(rows);

        float[] unmerged = new float[rows * out];
        layer.forward(x, unmerged, rows, saved, false, 0);
        float[] baseOnly = new LoRALinear("base", in, out, layer.weight().clone(), layer.bias(), false,
                new LoraSpec(0, 16f, 0f, false), 1).infer(x, rows);
        layer.merge();
        float[] merged = new float[rows * out];
        layer.forward(x, merged, rows, saved, false, 0);

        double maxDifferenceToBase = 0;
        for (int i = 0; i < merged.length; i++) {
            assertEquals(merged[i], unmerged[i], 1e-4 * Math.max(1, Math.abs(merged[i])), "element " + i);
            maxDifferenceToBase = Math.max(maxDifferenceToBase, Math.abs(unmerged[i] - baseOnly[i]));
        }
        assertTrue(maxDifferenceToBase > 0.1, "the LoRA branch must change the output, max |Δ| = " + maxDifferenceToBase);
    }

    @Test
    void unmergeRestoresTheBaseWeightBitForBit() {
        Random random = new Random(3);
        for (boolean fanInFanOut : new boolean[] {false, true}) {
            float[] w0 = gaussian(random, 24 * 40);
            float[] original = w0.clone();
            LoRALinear layer = new LoRALinear("m", 24, 40, w0, null, fanInFanOut, new LoraSpec(4, 8f, 0f, false), 5);
            fill(random, layer.loraB().value());
            layer.merge();
            assertTrue(layer.isMerged());
            assertFalse(Arrays.equals(original, layer.weight()), "merge must change the weight");
            layer.unmerge();
            assertArrayEquals(original, layer.weight());
            assertSame(w0, layer.weight());
        }
    }

    @Test
    void mergedWeightIsW0PlusScaledBA() {
        Random random = new Random(4);
        int in = 6, out = 5, r = 3;
        float[] w0 = gaussian(random, in * out);
        for (boolean fanInFanOut : new boolean[] {false, true}) {
            LoRALinear layer = new LoRALinear("m", in, out, w0.clone(), null, fanInFanOut, new LoraSpec(r, 6f, 0f, true), 5);
            fill(random, layer.loraB().value());
            float[] a = layer.loraA().value();
            float[] b = layer.loraB().value();
            double s = 6 / Math.sqrt(r);
            layer.merge();
            for (int o = 0; o < out; o++) {
                for (int i = 0; i < in; i++) {
                    double delta = 0;
                    for (int k = 0; k < r; k++) {
                        delta += b[o * r + k] * (double) a[k * in + i];
                    }
                    int index = fanInFanOut ? i * out + o : o * in + i;
                    assertEquals(w0[index] + s * delta, layer.weight()[index], 1e-5);
                }
            }
        }
    }

    @Test
    void mergingTwiceIsRefusedNotDoubled() {
        LoRALinear layer = new LoRALinear("twice", 4, 4, new float[16], null, false, new LoraSpec(2, 4f, 0f, false), 1);
        layer.merge();
        float[] once = layer.weight().clone();
        IllegalStateException error = assertThrows(IllegalStateException.class, layer::merge);
        assertTrue(error.getMessage().contains("twice"), error.getMessage());
        assertArrayEquals(once, layer.weight());
        assertThrows(IllegalStateException.class, () -> {
            layer.unmerge();
            layer.unmerge();
        });
    }

    @Test
    void safeMergeRefusesNonFiniteResultsAndLeavesTheWeightAlone() {
        float[] w0 = new float[3 * 2];
        LoRALinear layer = new LoRALinear("h.0.attn.c_attn", 3, 2, w0, null, false, new LoraSpec(1, 1f, 0f, false), 1);
        layer.loraB().value()[1] = Float.NaN;
        ArithmeticException error = assertThrows(ArithmeticException.class, layer::merge);
        assertTrue(error.getMessage().contains("h.0.attn.c_attn"), error.getMessage());
        assertTrue(error.getMessage().contains("NaN"), error.getMessage());
        assertFalse(layer.isMerged());
        assertSame(w0, layer.weight());
    }

    @Test
    void backwardThroughAMergedLayerIsRefused() {
        LoRALinear layer = new LoRALinear("m", 4, 4, new float[16], null, false, new LoraSpec(2, 4f, 0f, false), 1);
        LoRALinear.Activations saved = layer.newActivations(1);
        layer.merge();
        float[] y = new float[4];
        layer.forward(new float[4], y, 1, saved, true, 0);
        assertThrows(IllegalStateException.class, () -> layer.backward(new float[4], new float[4], new float[4], 1, saved, false));
    }

    @Test
    void freshAdapterIsKaimingUniformAInZeroBAndLeavesTheOutputUnchanged() {
        int in = 256, out = 16, rank = 8, rows = 3;
        Random random = new Random(6);
        float[] w0 = gaussian(random, in * out);
        LoRALinear layer = new LoRALinear("fresh", in, out, w0, null, false, new LoraSpec(rank, 16f, 0f, false), 11);
        double bound = 1 / Math.sqrt(in);
        double sumSquares = 0;
        for (float a : layer.loraA().value()) {
            assertTrue(Math.abs(a) <= bound, "A outside ±1/√in: " + a);
            sumSquares += a * a;
        }
        // variance of U(±b) is b²/3
        assertEquals(bound * bound / 3, sumSquares / (rank * in), bound * bound / 3 * 0.1);
        for (float b : layer.loraB().value()) {
            assertEquals(0f, b);
        }
        float[] x = gaussian(random, rows * in);
        float[] plain = new LoRALinear("plain", in, out, w0, null, false, new LoraSpec(0, 1f, 0f, false), 0).infer(x, rows);
        assertArrayEquals(plain, layer.infer(x, rows));
        assertArrayEquals(layer.loraA().value(),
                new LoRALinear("again", in, out, w0, null, false, new LoraSpec(rank, 16f, 0f, false), 11).loraA().value(),
                "the same seed gives the same A");
    }

    @Test
    void rankZeroIsAPlainLinearLayerWithNothingToTrain() {
        Random random = new Random(8);
        int in = 9, out = 4, rows = 2;
        float[] w = gaussian(random, in * out);
        float[] bias = gaussian(random, out);
        LoRALinear layer = new LoRALinear("plain", in, out, w, bias, false, new LoraSpec(0, 8f, 0f, false), 1);
        assertTrue(layer.trainableParameters().isEmpty());
        float[] x = gaussian(random, rows * in);
        float[] y = layer.infer(x, rows);
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double expected = bias[o];
                for (int i = 0; i < in; i++) {
                    expected += x[r * in + i] * (double) w[o * in + i];
                }
                assertEquals(expected, y[r * out + o], 1e-5);
            }
        }
    }

    @Test
    void dropoutIsDeterministicPerKeyAndOnlyTouchesTheLoraBranch() {
        Random random = new Random(10);
        int in = 32, out = 8, rows = 4;
        LoRALinear layer = new LoRALinear("d", in, out, gaussian(random, in * out), null, false, new LoraSpec(4, 8f, 0.5f, false), 3);
        fill(random, layer.loraB().value());
        float[] x = gaussian(random, rows * in);
        LoRALinear.Activations saved = layer.newActivations(rows);
        float[] first = new float[rows * out];
        float[] second = new float[rows * out];
        float[] other = new float[rows * out];
        float[] eval = new float[rows * out];
        layer.forward(x, first, rows, saved, true, 1234);
        layer.forward(x, second, rows, saved, true, 1234);
        layer.forward(x, other, rows, saved, true, 1235);
        layer.forward(x, eval, rows, saved, false, 1234);
        assertArrayEquals(first, second);
        assertFalse(Arrays.equals(first, other));
        assertFalse(Arrays.equals(first, eval));
        // with B = 0 the branch contributes nothing, dropout or not: the base path never sees dropout
        Arrays.fill(layer.loraB().value(), 0f);
        layer.forward(x, first, rows, saved, true, 1234);
        layer.forward(x, eval, rows, saved, false, 1234);
        assertArrayEquals(eval, first);
    }

    @Test
    void rejectsMismatchedShapesWithTheLayerName() {
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                () -> new LoRALinear("q_proj", 4, 8, new float[31], null, false, new LoraSpec(2, 4f, 0f, false), 1));
        assertTrue(error.getMessage().startsWith("q_proj"), error.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new LoraSpec(-1, 1f, 0f, false));
        assertThrows(IllegalArgumentException.class, () -> new LoraSpec(2, 1f, 1f, false));
        LoRALinear layer = new LoRALinear("q_proj", 4, 8, new float[32], null, false, new LoraSpec(2, 4f, 0f, false), 1);
        LoRALinear.Activations saved = layer.newActivations(2);
        assertThrows(IllegalArgumentException.class, () -> layer.forward(new float[12], new float[24], 3, saved, false, 0));
        assertThrows(IllegalArgumentException.class, () -> layer.forward(new float[7], new float[16], 2, saved, false, 0));
        LoRALinear otherLayer = new LoRALinear("k_proj", 4, 8, new float[32], null, false, new LoraSpec(2, 4f, 0f, false), 1);
        assertThrows(IllegalArgumentException.class, () -> otherLayer.forward(new float[8], new float[16], 2, saved, false, 0));
        assertNotEquals(0f, layer.scaling());
    }

    // --- helpers ---------------------------------------------------------------------------------

    /** keep/(1−p) for each input element, read off the kernel by dropping a vector of ones. */
    static double[] keepScale(int n, float p, long key) {
        float[] ones = new float[n];
        Arrays.fill(ones, 1f);
        if (p > 0f) {
            Dropout.forward(ones, ones, n, p, key, new long[Dropout.maskWords(n)]);
        }
        return toDouble(ones);
    }

    static void assertFiniteDifferences(double[] parameter, double[] analytic, java.util.function.DoubleSupplier loss, String what) {
        double h = 1e-6;
        for (int i = 0; i < parameter.length; i++) {
            double saved = parameter[i];
            parameter[i] = saved + h;
            double plus = loss.getAsDouble();
            parameter[i] = saved - h;
            double minus = loss.getAsDouble();
            parameter[i] = saved;
            double numeric = (plus - minus) / (2 * h);
            double error = Math.abs(numeric - analytic[i]) / Math.max(1, Math.abs(numeric) + Math.abs(analytic[i]));
            assertTrue(error <= 1e-6, what + "[" + i + "]: analytic " + analytic[i] + " numeric " + numeric + " relative error " + error);
        }
    }

    static void assertClose(double[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 2e-5 * Math.max(1, Math.abs(expected[i])), what + "[" + i + "]");
        }
    }

    static double dot(double[] a, double[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            sum += a[i] * b[i];
        }
        return sum;
    }

    static float[] gaussian(Random random, int n) {
        float[] values = new float[n];
        fill(random, values);
        return values;
    }

    static void fill(Random random, float[] values) {
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian() * 0.5f;
        }
    }

    static double[] toDouble(float[] values) {
        double[] result = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            result[i] = values[i];
        }
        return result;
    }
}
