package dev.loraflow.core.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.kernels.FrozenMatrix;
import java.lang.foreign.Arena;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Int8MatrixTest {

    @Test
    void perRowAbsmaxScaleAndRoundToNearest() {
        float[] values = {1f, -0.5f, 0.25f, 0f, /* row 2 */ -4f, 2f, 1f, 0.01f, /* zero row */ 0f, 0f, 0f, 0f};
        try (Arena arena = Arena.ofConfined()) {
            Int8Matrix int8 = Int8Matrix.quantize(FrozenMatrix.of(values, 3, 4), arena);
            assertEquals(1f / 127, int8.scale(0));
            assertEquals(4f / 127, int8.scale(1));
            assertEquals(0f, int8.scale(2));
            assertEquals(127, int8.code(0, 0));
            assertEquals(-63, int8.code(0, 1)); // -63.5: a half rounds up, as Math.round does
            assertEquals(32, int8.code(0, 2)); // 31.75
            assertEquals(-127, int8.code(1, 0));
            assertEquals(0, int8.code(1, 3)); // 0.3175
            assertEquals(12 + 3 * 4, int8.bytes());
        }
    }

    @Test
    void errorAtMostHalfAStepOfItsRow() {
        Random random = new Random(11);
        int rows = 40;
        int cols = 300;
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (random.nextGaussian() * (1 + i / cols));
        }
        try (Arena arena = Arena.ofConfined()) {
            Int8Matrix int8 = Int8Matrix.quantize(FrozenMatrix.of(values, rows, cols), arena);
            float[] restored = int8.toFloat32();
            for (int i = 0; i < values.length; i++) {
                float step = int8.scale(i / cols);
                assertTrue(Math.abs(restored[i] - values[i]) <= step / 2 * 1.0001f, "element " + i);
            }
        }
    }

    @Test
    void parsesTheQuantizationNames() {
        assertEquals(Quantization.NF4, Quantization.parse("NF4"));
        assertEquals(Quantization.INT8, Quantization.parse("int8"));
        assertEquals(Quantization.NONE, Quantization.parse("none"));
        assertEquals("quantization must be none, nf4 or int8, got 'fp4'",
                assertThrows(IllegalArgumentException.class, () -> Quantization.parse("fp4")).getMessage());
    }
}
