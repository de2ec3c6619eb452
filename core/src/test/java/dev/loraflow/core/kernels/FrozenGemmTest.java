package dev.loraflow.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.loraflow.core.quant.Int8Matrix;
import dev.loraflow.core.quant.Nf4Matrix;
import dev.loraflow.core.safetensors.HalfFloats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * GEMM with a frozen operand (BF16/F16, NF4, int8) against float32 GEMM on the same values widened exactly:
 * the widening is exact and the frozen path sums every element in the same order, so C must agree bit for bit.
 */
class FrozenGemmTest {

    private static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static Stream<Arguments> shapes() {
        int[][] mnk = {
            {1, 17, 5}, {3, 1027, 300}, {8, 32, 16}, {7, 33, 31}, {17, 65, 300}, {64, 8, 768},
            {130, 1030, 40}, {257, 97, 513}, {96, 2304, 768}, {33, 70, 5000},
            // widened straight into packed panels, and (four rows: read in place) in two blocks of 4096 and 104 columns
            {5, 4200, 1024}, {4, 4200, 1024},
        };
        Stream.Builder<Arguments> all = Stream.builder();
        for (int[] s : mnk) {
            for (HalfMatrix.Format format : HalfMatrix.Format.values()) {
                for (boolean transB : new boolean[] {false, true}) {
                    all.add(Arguments.of(s[0], s[1], s[2], format, transB));
                }
            }
        }
        return all.build();
    }

    @ParameterizedTest(name = "m={0} n={1} k={2} {3} transB={4}")
    @MethodSource("shapes")
    void equalsFloat32GemmOnTheWidenedValues(int m, int n, int k, HalfMatrix.Format format, boolean transB) {
        Random random = new Random(17L * m + 5L * n + k + format.ordinal() + (transB ? 2 : 0));
        int rows = transB ? n : k;
        int cols = transB ? k : n;
        float[] widened = new float[rows * cols];
        try (Arena arena = Arena.ofShared()) {
            MemorySegment half = arena.allocate(2L * rows * cols);
            for (int i = 0; i < widened.length; i++) {
                float value = (float) random.nextGaussian();
                short bits = format == HalfMatrix.Format.BF16 ? HalfFloats.toBf16(value) : HalfFloats.toF16(value);
                half.setAtIndex(U16_LE, i, bits);
                widened[i] = format == HalfMatrix.Format.BF16 ? HalfFloats.fromBf16(bits) : HalfFloats.fromF16(bits);
            }
            FrozenMatrix frozen = new HalfMatrix(half, rows, cols, format);
            assertArrayEquals(widened, frozen.toFloat32(), "widening is exact");
            assertSameAsFloat32Gemm(random, m, n, k, transB, frozen, widened);
        }
    }

    /**
     * Every 16-bit pattern, widened a row at a time (the vector path) and in runs from odd columns (its scalar tail too),
     * has the bits of the scalar conversion: Float.float16ToFloat for F16 (subnormals and Inf included), the top half of
     * a float32 for BF16. A NaN stays a NaN of its sign; its payload is compared only as far as conversions agree on
     * it (Float.float16ToFloat keeps a signalling NaN signalling when interpreted; compiled to F16C's vcvtph2ps it
     * quiets it). Repeated so that the compiled code is checked, not only the interpreted.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(HalfMatrix.Format.class)
    void everyBitPatternWidensExactly(HalfMatrix.Format format) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment all = arena.allocate(2 * 65536);
            int[] expected = new int[65536];
            for (int bits = 0; bits < 65536; bits++) {
                all.setAtIndex(U16_LE, bits, (short) bits);
                expected[bits] = Float.floatToRawIntBits(format == HalfMatrix.Format.F16
                        ? Float.float16ToFloat((short) bits) : Float.intBitsToFloat(bits << 16));
            }
            HalfMatrix matrix = new HalfMatrix(all, 256, 256, format);
            float[] run = new float[256];
            for (int round = 0; round < 20; round++) {
                float[] widened = matrix.toFloat32();
                for (int bits = 0; bits < 65536; bits++) {
                    if (!sameUpToNanPayload(expected[bits], Float.floatToRawIntBits(widened[bits]))) {
                        fail(format + " 0x" + Integer.toHexString(bits) + " widened to 0x"
                                + Integer.toHexString(Float.floatToRawIntBits(widened[bits])) + ", not 0x"
                                + Integer.toHexString(expected[bits]) + ", in round " + round);
                    }
                }
                int row = round * 13 % 256;
                int col = 1 + round % 7;
                matrix.widen(row, col, 256 - col, run, 0);
                for (int i = 0; i < 256 - col; i++) {
                    assertTrue(sameUpToNanPayload(expected[row * 256 + col + i], Float.floatToRawIntBits(run[i])),
                            "row " + row + " col " + (col + i));
                }
            }
        }
    }

    /** The same float32 bits, or NaNs of the same sign. */
    private static boolean sameUpToNanPayload(int expected, int actual) {
        return expected == actual || Float.isNaN(Float.intBitsToFloat(expected)) && Float.isNaN(Float.intBitsToFloat(actual))
                && (expected < 0) == (actual < 0);
    }

    static Stream<Arguments> quantizedShapes() {
        // odd widths, so NF4's blocks of 64 straddle rows and the packed runs start at odd elements
        int[][] mnk = {{3, 200, 96}, {9, 33, 77}, {96, 1030, 513}, {257, 97, 513}, {40, 70, 130}};
        Stream.Builder<Arguments> all = Stream.builder();
        for (int[] s : mnk) {
            for (String format : new String[] {"nf4", "nf4 double", "int8"}) {
                for (boolean transB : new boolean[] {false, true}) {
                    all.add(Arguments.of(s[0], s[1], s[2], format, transB));
                }
            }
        }
        return all.build();
    }

    @ParameterizedTest(name = "m={0} n={1} k={2} {3} transB={4}")
    @MethodSource("quantizedShapes")
    void quantizedWeightEqualsFloat32GemmOnItsDequantizedValues(int m, int n, int k, String format, boolean transB) {
        Random random = new Random(31L * m + 7L * n + k + format.length() + (transB ? 2 : 0));
        int rows = transB ? n : k;
        int cols = transB ? k : n;
        FrozenMatrix source = FrozenMatrix.of(KernelChecks.gaussian(random, rows * cols, 0, 1), rows, cols);
        try (Arena arena = Arena.ofShared()) {
            FrozenMatrix frozen = format.equals("int8")
                    ? Int8Matrix.quantize(source, arena)
                    : Nf4Matrix.quantize(source, format.equals("nf4 double"), arena);
            assertSameAsFloat32Gemm(random, m, n, k, transB, frozen, frozen.toFloat32());
        }
    }

    /**
     * C from the frozen operand equals C from float32 GEMM on {@code widened} bit for bit, in the forward's
     * layout with a bias and a low-rank epilogue, and in the input gradient's (op(A) stored transposed).
     */
    private static void assertSameAsFloat32Gemm(Random random, int m, int n, int k, boolean transB, FrozenMatrix frozen,
                                                float[] widened) {
        int cols = transB ? k : n;
        float[] a = KernelChecks.gaussian(random, m * k, 0, 1);
        float[] bias = KernelChecks.gaussian(random, n, 0, 1);
        int rank = 4;
        float[] u = KernelChecks.gaussian(random, m * rank, 0, 1);
        float[] v = KernelChecks.gaussian(random, n * rank, 0, 1);
        Epilogue epilogue = Epilogue.lowRank(bias, u, rank, v, rank, true, rank, 0.5f);
        float[] expected = KernelChecks.gaussian(random, m * n, 0, 1);
        float[] actual = expected.clone();
        Gemm.sgemm(false, transB, m, n, k, 1f, a, 0, k, widened, 0, cols, 1f, expected, 0, n, epilogue);
        Gemm.sgemm(false, transB, m, n, k, 1f, a, 0, k, frozen, 1f, actual, 0, n, epilogue);
        assertArrayEquals(expected, actual);

        // the input gradient's layout: op(A) = A stored transposed
        float[] at = KernelChecks.gaussian(random, k * m, 0, 1);
        float[] expectedT = new float[m * n];
        float[] actualT = new float[m * n];
        Gemm.sgemm(true, transB, m, n, k, 0.75f, at, 0, m, widened, 0, cols, 0f, expectedT, 0, n);
        Gemm.sgemm(true, transB, m, n, k, 0.75f, at, 0, m, frozen, 0f, actualT, 0, n, null);
        assertArrayEquals(expectedT, actualT);
    }

    @ParameterizedTest(name = "transB={0}")
    @MethodSource("transposes")
    void refusesAMatrixOfTheWrongShape(boolean transB) {
        FrozenMatrix w = FrozenMatrix.of(new float[12], 3, 4);
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
                () -> Gemm.sgemm(false, transB, 2, 3, 5, 1f, new float[10], 0, 5, w, 0f, new float[6], 0, 3, null));
        assertEquals("B: a 3×4 matrix is not op(B) [5, 3]" + (transB ? " transposed" : ""), error.getMessage());
    }

    static Stream<Boolean> transposes() {
        return Stream.of(false, true);
    }
}
