package dev.loraflow.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.kernels.FrozenMatrix;
import java.lang.foreign.Arena;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class Nf4MatrixTest {

    /** bitsandbytes' NF4 table (functional.py, get_4bit_type("nf4")), as published with QLoRA. */
    private static final double[] PUBLISHED = {
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
        -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
        0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
        0.7229568362236023, 1.0,
    };

    @Test
    void codeTableIsThePublishedOne() {
        assertEquals(16, Nf4Matrix.CODE.length);
        for (int i = 0; i < PUBLISHED.length; i++) {
            assertEquals((float) PUBLISHED[i], Nf4Matrix.CODE[i], "code " + i);
        }
    }

    @Test
    void encodePicksTheNearestCode() {
        for (int i = 0; i < 16; i++) {
            assertEquals(i, Nf4Matrix.encode(Nf4Matrix.CODE[i]));
        }
        for (float x = -1f; x <= 1f; x += 1e-3f) {
            int code = Nf4Matrix.encode(x);
            for (float other : Nf4Matrix.CODE) {
                assertTrue(Math.abs(x - Nf4Matrix.CODE[code]) <= Math.abs(x - other), x + " → code " + code);
            }
        }
    }

    @Test
    void blocksOf64WithTheirAbsmaxAndTwoCodesAByteHighNibbleFirst() {
        // 3 rows of 50: blocks straddle rows, the last one short (150 = 2·64 + 22)
        int rows = 3;
        int cols = 50;
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = Nf4Matrix.CODE[i % 16] * (1 + i / 64);
        }
        try (Arena arena = Arena.ofConfined()) {
            Nf4Matrix nf4 = Nf4Matrix.quantize(FrozenMatrix.of(values, rows, cols), false, arena);
            assertEquals(1f, nf4.absmax(0));
            assertEquals(2f, nf4.absmax(1));
            assertEquals(3f, nf4.absmax(2));
            for (int i = 0; i < values.length; i++) {
                assertEquals(i % 16, nf4.code(i), "element " + i);
            }
            // the codes are exact multiples of the absmax, so they come back exactly
            assertArrayEquals(values, nf4.toFloat32());
            assertEquals(75 + 3 * 4, nf4.bytes());
        }
    }

    @ParameterizedTest(name = "double quantization {0}")
    @ValueSource(booleans = {false, true})
    void errorIsBoundedByHalfTheTableSpacing(boolean doubleQuantization) {
        Random random = new Random(7);
        int rows = 96;
        int cols = 200;
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (random.nextGaussian() * 0.02 * (1 + i % 7));
        }
        double halfGap = 0;
        for (int i = 1; i < 16; i++) {
            halfGap = Math.max(halfGap, (Nf4Matrix.CODE[i] - Nf4Matrix.CODE[i - 1]) / 2.0);
        }
        try (Arena arena = Arena.ofConfined()) {
            Nf4Matrix nf4 = Nf4Matrix.quantize(FrozenMatrix.of(values, rows, cols), doubleQuantization, arena);
            assertEquals(doubleQuantization, nf4.doubleQuantized());
            float[] restored = nf4.toFloat32();
            double squaredError = 0;
            for (int i = 0; i < values.length; i++) {
                long block = i / Nf4Matrix.BLOCK;
                float trueAbsmax = 0f;
                for (int j = (int) block * 64; j < Math.min(values.length, (block + 1) * 64); j++) {
                    trueAbsmax = Math.max(trueAbsmax, Math.abs(values[j]));
                }
                // the table's spacing at the block's scale, plus what double quantization did to the scale
                double bound = halfGap * trueAbsmax + Math.abs(nf4.absmax(block) - trueAbsmax) + 1e-7;
                assertTrue(Math.abs(restored[i] - values[i]) <= bound,
                        "element " + i + ": " + values[i] + " → " + restored[i] + ", bound " + bound);
                squaredError += (restored[i] - values[i]) * (double) (restored[i] - values[i]);
            }
            long blocks = (values.length + 63) / 64;
            assertEquals(values.length / 2 + (doubleQuantization ? blocks + 4 * ((blocks + 255) / 256) : 4 * blocks), nf4.bytes(),
                    "4 bits a value, a float32 or a byte per block, a float32 per 256 blocks");
            double squaredValues = 0;
            for (float value : values) {
                squaredValues += value * (double) value;
            }
            // NF4 keeps normally distributed weights to about a tenth of their size
            double relativeRms = Math.sqrt(squaredError / squaredValues);
            assertTrue(relativeRms < 0.12, "relative rms error " + relativeRms);
        }
    }

    /**
     * Odd widths (blocks straddle rows, runs start at odd elements and end mid-byte) and a width of whole blocks (the
     * vector lookup over every block, up to the last byte of the codes); repeated so that compiled code is checked too.
     */
    @ParameterizedTest(name = "{0} × {1}")
    @CsvSource({"5, 77", "7, 300", "4, 256"})
    void widenOfAnyRunEqualsTheWholeMatrix(int rows, int cols) {
        Random random = new Random(3);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
        }
        try (Arena arena = Arena.ofConfined()) {
            Nf4Matrix nf4 = Nf4Matrix.quantize(FrozenMatrix.of(values, rows, cols), true, arena);
            for (int round = 0; round < 200; round++) {
                float[] whole = nf4.toFloat32();
                // element by element from the code table and the block's absmax, whatever path widen takes (vectors)
                for (int i = 0; i < whole.length; i++) {
                    if (Nf4Matrix.CODE[nf4.code(i)] * nf4.absmax(i / Nf4Matrix.BLOCK) != whole[i]) {
                        assertEquals(Nf4Matrix.CODE[nf4.code(i)] * nf4.absmax(i / Nf4Matrix.BLOCK), whole[i],
                                "element " + i + " in round " + round);
                    }
                }
                for (int row = 0; row < rows; row++) {
                    for (int col = round % 13; col < cols; col += 13) {
                        int count = Math.min(cols - col, 1 + (row * 7 + col + round) % 80);
                        float[] run = new float[count + 2];
                        nf4.widen(row, col, count, run, 1);
                        for (int i = 0; i < count; i++) {
                            assertEquals(whole[row * cols + col + i], run[1 + i], "row " + row + " col " + (col + i));
                        }
                    }
                }
            }
        }
    }
}
