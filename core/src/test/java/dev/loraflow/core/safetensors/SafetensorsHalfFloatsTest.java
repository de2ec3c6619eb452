package dev.loraflow.core.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SafetensorsHalfFloatsTest {

    private static short f16(float value) {
        return HalfFloats.toF16(value);
    }

    @Test
    void f16SpecialValuesFollowIeee() {
        assertEquals(0x3C00, f16(1.0f) & 0xFFFF);
        assertEquals(0x7BFF, f16(65504f) & 0xFFFF, "largest finite half");
        assertEquals(0x7BFF, f16(65519f) & 0xFFFF, "below the rounding midpoint stays finite");
        assertEquals(0x7C00, f16(65520f) & 0xFFFF, "the midpoint rounds to even, which is infinity");
        assertEquals(0x7C00, f16(1e6f) & 0xFFFF);
        assertEquals(0xFC00, f16(Float.NEGATIVE_INFINITY) & 0xFFFF);
        assertEquals(0x0001, f16(0x1p-24f) & 0xFFFF, "smallest subnormal");
        assertEquals(0x0000, f16(0x1p-26f) & 0xFFFF, "a quarter of the smallest subnormal flushes to zero");
        assertEquals(0x8000, f16(-0.0f) & 0xFFFF, "negative zero keeps its sign");
        assertTrue(Float.isNaN(HalfFloats.fromF16(f16(Float.NaN))));
        assertEquals(0x3C00, f16(1 + 0x1p-11f) & 0xFFFF, "tie rounds to even (down)");
        assertEquals(0x3C02, f16(1 + 3 * 0x1p-11f) & 0xFFFF, "tie rounds to even (up)");
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals(0x3F80, HalfFloats.toBf16(1.0f) & 0xFFFF);
        assertEquals(0x3F80, HalfFloats.toBf16(1 + 0x1p-8f) & 0xFFFF, "tie rounds to even (down)");
        assertEquals(0x3F82, HalfFloats.toBf16(1 + 3 * 0x1p-8f) & 0xFFFF, "tie rounds to even (up)");
        assertEquals(0x3F81, HalfFloats.toBf16(1 + 0x1p-8f + 0x1p-20f) & 0xFFFF, "above the tie rounds up");
        assertEquals(0x7F80, HalfFloats.toBf16(Float.MAX_VALUE) & 0xFFFF, "overflow rounds to infinity");
        assertEquals(0xFF80, HalfFloats.toBf16(Float.NEGATIVE_INFINITY) & 0xFFFF);
        assertEquals(0x8000, HalfFloats.toBf16(-0.0f) & 0xFFFF);
        assertEquals(0x0001, HalfFloats.toBf16(Float.intBitsToFloat(0x00010000)) & 0xFFFF, "subnormals keep their bits");
    }

    @Test
    void bf16KeepsNaNsNaN() {
        float lowPayloadNaN = Float.intBitsToFloat(0x7F800001);
        assertTrue(Float.isNaN(lowPayloadNaN));
        short bits = HalfFloats.toBf16(lowPayloadNaN);
        assertTrue(Float.isNaN(HalfFloats.fromBf16(bits)), "truncation would have produced infinity");
        assertEquals(0x7FC0, bits & 0xFFFF, "made quiet");
        assertEquals(0xFFC0, HalfFloats.toBf16(Float.intBitsToFloat(0xFF800001)) & 0xFFFF, "sign kept");
    }

    @Test
    void roundTripErrorIsWithinHalfAnUlp() {
        var random = new SplittableRandom(7);
        for (int i = 0; i < 100_000; i++) {
            float value = (float) (random.nextGaussian() * Math.pow(2, random.nextInt(-10, 10)));
            float viaBf16 = HalfFloats.fromBf16(HalfFloats.toBf16(value));
            assertTrue(Math.abs(viaBf16 - value) <= Math.abs(value) * 0x1p-8f, () -> value + " -> " + viaBf16);
            float viaF16 = HalfFloats.fromF16(HalfFloats.toF16(value));
            float allowed = Math.max(Math.abs(value) * 0x1p-11f, 0x1p-25f);
            assertTrue(Math.abs(viaF16 - value) <= allowed, () -> value + " -> " + viaF16);
        }
    }

    @Test
    void everyHalfValueRoundTripsExactly() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f16 = HalfFloats.fromF16((short) bits);
            if (!Float.isNaN(f16)) {
                assertEquals(bits, HalfFloats.toF16(f16) & 0xFFFF);
            }
            float bf16 = HalfFloats.fromBf16((short) bits);
            if (!Float.isNaN(bf16)) {
                assertEquals(bits, HalfFloats.toBf16(bf16) & 0xFFFF);
            }
        }
    }

    /**
     * The vectorised whole-tensor conversions give the scalar ones' bits: every bfloat16 pattern widened,
     * and float32 values of every kind (ties both ways, NaNs with payloads only in the low bits, infinities,
     * subnormals, random bits) narrowed, at lengths that leave a scalar tail.
     */
    @Test
    void bulkBf16ConversionsGiveTheScalarBits() {
        int patterns = 1 << 16;
        java.lang.foreign.MemorySegment halves = java.lang.foreign.MemorySegment.ofArray(new byte[2 * patterns]);
        for (int bits = 0; bits < patterns; bits++) {
            halves.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN),
                    2L * bits, (short) bits);
        }
        float[] widened = new float[patterns];
        HalfFloats.fromBf16(halves, widened, 0, patterns);
        for (int bits = 0; bits < patterns; bits++) {
            assertEquals(Float.floatToRawIntBits(HalfFloats.fromBf16((short) bits)), Float.floatToRawIntBits(widened[bits]),
                    "bfloat16 0x" + Integer.toHexString(bits));
        }

        java.util.Random random = new java.util.Random(5);
        float[] values = new float[10_007];
        int[] special = {0x3F808000, 0x3F818000, 0x7F800001, 0xFF800001, 0x7FC00000, 0x7F800000, 0x00000001,
                0x80008000, 0x7F7FFFFF, 0x00018000};
        for (int i = 0; i < values.length; i++) {
            values[i] = Float.intBitsToFloat(i < special.length ? special[i] : random.nextInt());
        }
        for (int length : new int[] {values.length, 3, 16, 17}) {
            short[] narrowed = new short[length + 2];
            HalfFloats.toBf16(values, 1, narrowed, 2, length - 1);
            for (int i = 0; i < length - 1; i++) {
                assertEquals(HalfFloats.toBf16(values[1 + i]), narrowed[2 + i],
                        "float32 0x" + Integer.toHexString(Float.floatToRawIntBits(values[1 + i])));
            }
        }
    }
}
