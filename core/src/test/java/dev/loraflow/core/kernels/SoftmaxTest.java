package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.SIZES;
import static dev.loraflow.core.kernels.KernelChecks.assertAllFinite;
import static dev.loraflow.core.kernels.KernelChecks.assertCloseToReference;
import static dev.loraflow.core.kernels.KernelChecks.assertGradient;
import static dev.loraflow.core.kernels.KernelChecks.gaussian;
import static dev.loraflow.core.kernels.KernelChecks.gaussianDoubles;
import static dev.loraflow.core.kernels.KernelChecks.maxAbs;
import static dev.loraflow.core.kernels.KernelChecks.numericGradient;
import static dev.loraflow.core.kernels.KernelChecks.weightedSum;
import static dev.loraflow.core.kernels.KernelChecks.widen;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SoftmaxTest {

    private static final int IGNORE = Softmax.IGNORE_INDEX;

    /**
     * Each row size with one and with three rows, a GPT-2-wide vocabulary, and shapes big enough to
     * be split over the cores.
     */
    static Stream<Arguments> shapes() {
        return Stream.concat(
                Arrays.stream(SIZES).boxed().flatMap(cols -> Stream.of(Arguments.of(1, cols), Arguments.of(3, cols))),
                Stream.of(Arguments.of(2, 50_257), Arguments.of(splitRows(3077), 3077), Arguments.of(splitRows(50_257), 50_257)));
    }

    /** Enough rows of cols that the row kernels hand them to more than one task. */
    static int splitRows(int cols) {
        return 2 * VectorMath.PARALLEL_MIN_ELEMENTS / cols + 1;
    }

    @Test
    void referenceSoftmaxBackwardMatchesFiniteDifferences() {
        Random random = new Random(1);
        int rows = 3;
        int cols = 7;
        double[] x = gaussianDoubles(random, rows * cols, 0, 2);
        double[] g = gaussianDoubles(random, rows * cols, 0, 1);
        double[] y = new double[rows * cols];
        SoftmaxReference.softmaxForward(x, 0, y, 0, rows, cols);
        double[] dx = new double[rows * cols];
        SoftmaxReference.softmaxBackward(g, 0, y, 0, dx, 0, rows, cols);

        double[] numeric = numericGradient(x, () -> {
            double[] out = new double[rows * cols];
            SoftmaxReference.softmaxForward(x, 0, out, 0, rows, cols);
            return weightedSum(out, g);
        });
        assertGradient("softmax dx", dx, numeric);
    }

    @Test
    void referenceCrossEntropyBackwardMatchesFiniteDifferences() {
        Random random = new Random(2);
        int rows = 4;
        int vocab = 9;
        int[] targets = {3, IGNORE, 0, 8};
        double dLoss = 0.7;
        double[] logits = gaussianDoubles(random, rows * vocab, 0, 2);
        double[] lse = new double[rows];
        SoftmaxReference.crossEntropyForward(logits, 0, targets, 0, lse, 0, rows, vocab);
        double[] dlogits = new double[rows * vocab];
        SoftmaxReference.crossEntropyBackward(logits, 0, targets, 0, lse, 0, dLoss, dlogits, 0, rows, vocab);

        double[] numeric = numericGradient(logits,
                () -> dLoss * SoftmaxReference.crossEntropyForward(logits, 0, targets, 0, new double[rows], 0, rows, vocab));
        assertGradient("cross-entropy dlogits", dlogits, numeric);
        for (int i = vocab; i < 2 * vocab; i++) {
            assertEquals(0.0, dlogits[i], "ignored row");
        }
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void softmaxMatchesReference(int rows, int cols) {
        Random random = new Random(31L * rows + cols);
        int n = rows * cols;
        float[] x = gaussian(random, n, 0, 3);
        float[] dy = gaussian(random, n, 0, 1);
        double[] xRef = widen(x);
        double[] dyRef = widen(dy);

        float[] y = new float[n];
        double[] yRef = new double[n];
        Softmax.softmaxForward(x, 0, y, 0, rows, cols);
        SoftmaxReference.softmaxForward(xRef, 0, yRef, 0, rows, cols);
        assertCloseToReference("y", yRef, y);

        // The backward of both runs on the same y, so only the backward's own rounding is compared.
        // dx = y ⊙ (dy − Σ dy ⊙ y) can cancel to far below its terms y·dy, which set the scale.
        float[] dx = new float[n];
        double[] dxRef = new double[n];
        double[] yWide = widen(y);
        Softmax.softmaxBackward(dy, 0, y, 0, dx, 0, rows, cols);
        SoftmaxReference.softmaxBackward(dyRef, 0, yWide, 0, dxRef, 0, rows, cols);
        double[] terms = new double[n];
        VectorMathReference.mul(yWide, 0, dyRef, 0, terms, 0, n);
        assertCloseToReference("dx", dxRef, dx, Math.max(maxAbs(dxRef), maxAbs(terms)));
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void crossEntropyMatchesReference(int rows, int vocab) {
        Random random = new Random(17L * rows + vocab);
        int n = rows * vocab;
        float[] logits = gaussian(random, n, 0, 3);
        int[] targets = new int[rows];
        for (int r = 0; r < rows; r++) {
            targets[r] = r % 3 == 1 ? IGNORE : random.nextInt(vocab);
        }
        double[] logitsRef = widen(logits);

        float[] lse = new float[rows];
        double[] lseRef = new double[rows];
        double loss = Softmax.crossEntropyForward(logits, 0, targets, 0, lse, 0, rows, vocab);
        double lossRef = SoftmaxReference.crossEntropyForward(logitsRef, 0, targets, 0, lseRef, 0, rows, vocab);
        assertCloseToReference("loss", lossRef, loss);
        assertCloseToReference("logSumExp", lseRef, lse);

        float dLoss = 0.5f;
        float[] dlogits = new float[n];
        double[] dlogitsRef = new double[n];
        Softmax.crossEntropyBackward(logits, 0, targets, 0, lse, 0, dLoss, dlogits, 0, rows, vocab);
        SoftmaxReference.crossEntropyBackward(logitsRef, 0, targets, 0, lseRef, 0, dLoss, dlogitsRef, 0, rows, vocab);
        assertCloseToReference("dlogits", dlogitsRef, dlogits);
    }

    @Test
    void offsetsAreHonoured() {
        Random random = new Random(5);
        int rows = 3;
        int cols = 19;
        float[] x = gaussian(random, rows * cols + 4, 0, 1);
        float[] y = new float[rows * cols + 9];
        Softmax.softmaxForward(x, 4, y, 9, rows, cols);
        double[] yRef = new double[rows * cols + 9];
        SoftmaxReference.softmaxForward(widen(x), 4, yRef, 9, rows, cols);
        assertCloseToReference("y", yRef, y);
        assertEquals(0f, y[8]);
    }

    @Test
    void extremeLogitsGiveFiniteProbabilities() {
        float[] x = {3e38f, -3e38f, 0f, 1e30f, -1e30f, 3e38f, Float.NEGATIVE_INFINITY, 88f, -104f, 5f,
                -3e38f, -3e38f, -3e38f, -3e38f, -3e38f, -3e38f, -3e38f};
        float[] y = new float[x.length];
        Softmax.softmaxForward(x, 0, y, 0, 1, x.length);
        assertAllFinite("y", y);
        assertEquals(0.5f, y[0]);
        assertEquals(0.5f, y[5]);
        assertEquals(1.0, VectorMath.sum(y, 0, y.length), 1e-6);

        float[] negative = new float[33];
        Arrays.fill(negative, -1e30f);
        negative[20] = -9e29f;
        Softmax.softmaxForward(negative, 0, negative, 0, 1, negative.length);
        assertAllFinite("very negative row", negative);
        assertEquals(1f, negative[20]);

        int[] target = {1};
        float[] lse = new float[1];
        double loss = Softmax.crossEntropyForward(x, 0, target, 0, lse, 0, 1, x.length);
        assertEquals((double) 3e38f - (double) -3e38f, loss, 1e32);
        float[] dlogits = new float[x.length];
        Softmax.crossEntropyBackward(x, 0, target, 0, lse, 0, 1f, dlogits, 0, 1, x.length);
        assertAllFinite("dlogits", dlogits);
        assertEquals(-1f, dlogits[1]);
    }

    @Test
    void allIgnoredTargetsGiveZeroLossAndZeroGradients() {
        int rows = 3;
        int vocab = 21;
        float[] logits = gaussian(new Random(3), rows * vocab, 0, 1);
        int[] targets = {IGNORE, IGNORE, IGNORE};
        float[] lse = {Float.NaN, Float.NaN, Float.NaN};
        assertEquals(0.0, Softmax.crossEntropyForward(logits, 0, targets, 0, lse, 0, rows, vocab));
        assertArrayEquals(new float[rows], lse);

        float[] dlogits = new float[rows * vocab];
        Arrays.fill(dlogits, Float.NaN);
        Softmax.crossEntropyBackward(logits, 0, targets, 0, lse, 0, 1f, dlogits, 0, rows, vocab);
        assertArrayEquals(new float[rows * vocab], dlogits);
    }

    @Test
    void ignoredRowsTakeNoPartInTheLoss() {
        Random random = new Random(4);
        int vocab = 40;
        float[] logits = gaussian(random, 3 * vocab, 0, 2);
        float[] lse = new float[3];
        double withIgnored = Softmax.crossEntropyForward(logits, 0, new int[] {5, IGNORE, 7}, 0, lse, 0, 3, vocab);
        double rowZero = Softmax.crossEntropyForward(logits, 0, new int[] {5}, 0, lse, 0, 1, vocab);
        double rowTwo = Softmax.crossEntropyForward(logits, 2 * vocab, new int[] {7}, 0, lse, 0, 1, vocab);
        assertEquals((rowZero + rowTwo) / 2, withIgnored, 1e-6);
    }

    @Test
    void crossEntropyBackwardInPlaceOverLogits() {
        Random random = new Random(6);
        int rows = 5;
        int vocab = 37;
        float[] logits = gaussian(random, rows * vocab, 0, 2);
        int[] targets = {1, IGNORE, 36, 0, 17};
        float[] lse = new float[rows];
        Softmax.crossEntropyForward(logits, 0, targets, 0, lse, 0, rows, vocab);
        float[] separate = new float[rows * vocab];
        Softmax.crossEntropyBackward(logits, 0, targets, 0, lse, 0, 1f, separate, 0, rows, vocab);
        Softmax.crossEntropyBackward(logits, 0, targets, 0, lse, 0, 1f, logits, 0, rows, vocab);
        assertArrayEquals(separate, logits);
    }

    @Test
    void targetsOutsideTheVocabularyAreRejected() {
        float[] logits = new float[2 * 4];
        float[] lse = new float[2];
        assertThrows(IllegalArgumentException.class,
                () -> Softmax.crossEntropyForward(logits, 0, new int[] {0, 4}, 0, lse, 0, 2, 4));
        assertThrows(IllegalArgumentException.class,
                () -> Softmax.crossEntropyBackward(logits, 0, new int[] {-1, 0}, 0, lse, 0, 1f, logits, 0, 2, 4));
    }
}
