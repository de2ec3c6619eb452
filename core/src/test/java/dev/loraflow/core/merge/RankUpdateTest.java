package dev.loraflow.core.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.loraflow.core.safetensors.HalfFloats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class RankUpdateTest {

    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The BF16 update's bytes are those of widening the weight, the float32 update and rounding, element by element. */
    @ParameterizedTest(name = "[{0}, {1}] rank {2}")
    @CsvSource({"19, 37, 3", "64, 2048, 8", "300, 1, 1"})
    void theBf16UpdateIsWideningTheFloat32UpdateAndRounding(int rows, int cols, int r) {
        Random random = new Random(rows * 31L + cols);
        float[] widened = new float[rows * cols];
        float[] coefficients = new float[rows * r];
        float[] basis = new float[r * cols];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment w = arena.allocate(2L * rows * cols);
            for (int i = 0; i < widened.length; i++) {
                short bits = HalfFloats.toBf16((float) random.nextGaussian() * 0.02f);
                w.setAtIndex(BF16, i, bits);
                widened[i] = HalfFloats.fromBf16(bits);
            }
            for (int i = 0; i < coefficients.length; i++) {
                coefficients[i] = (float) random.nextGaussian() * 0.01f;
            }
            for (int i = 0; i < basis.length; i++) {
                basis[i] = (float) random.nextGaussian() * 0.01f;
            }
            MemorySegment out = arena.allocate(2L * rows * cols);
            assertEquals(-1, RankUpdate.applyBf16(w, out, coefficients, basis, rows, cols, r));
            float[] expected = new float[widened.length];
            assertEquals(-1, RankUpdate.apply(widened, coefficients, basis, expected, rows, cols, r));
            for (int i = 0; i < expected.length; i++) {
                assertEquals(HalfFloats.toBf16(expected[i]), out.getAtIndex(BF16, i), "element " + i);
            }
        }
    }

    /**
     * A float32 sum that is finite but rounds past bfloat16's largest value would be an infinity in the merged file:
     * its index is the one reported, as is a NaN's in the weight.
     */
    @Test
    void aSumThatRoundsToAnInfinityOrANaNInTheWeightIsReported() {
        int rows = 3;
        int cols = 40;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment w = arena.allocate(2L * rows * cols);
            MemorySegment out = arena.allocate(2L * rows * cols);
            float[] coefficients = {1f, 1f, 1f};
            float[] basis = new float[cols];
            float largest = HalfFloats.fromBf16((short) 0x7F7F);
            w.setAtIndex(BF16, cols + 17, (short) 0x7F7F);
            basis[17] = largest / 256;
            assertEquals(true, Float.isFinite(largest + basis[17]), "a finite float32 sum");
            assertEquals(cols + 17, RankUpdate.applyBf16(w, out, coefficients, basis, rows, cols, 1));
            assertEquals(Float.POSITIVE_INFINITY, HalfFloats.fromBf16(out.getAtIndex(BF16, cols + 17)));

            basis[17] = 0;
            w.setAtIndex(BF16, 2L * cols + 5, (short) 0x7FC0);
            assertEquals(2L * cols + 5, RankUpdate.applyBf16(w, out, coefficients, basis, rows, cols, 1));
        }
    }
}
