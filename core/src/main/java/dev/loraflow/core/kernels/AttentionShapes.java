package dev.loraflow.core.kernels;

import java.util.Objects;

/**
 * Argument checks of the attention and RoPE kernels and their references. Unlike {@link Bounds}, a
 * too-small array is an {@link IllegalArgumentException}: these kernels are handed whole activation
 * tensors, so a short array means a wrong shape, not a wrong index.
 */
final class AttentionShapes {

    private AttentionShapes() {}

    /** Checks the head counts and returns the element count of one [B, T, heads, D] tensor. */
    static int checkHeads(int batch, int seqLen, int heads, int kvHeads, int headDim) {
        if (batch < 0 || seqLen < 0 || heads <= 0 || kvHeads <= 0 || headDim <= 0) {
            throw new IllegalArgumentException("bad shape B=" + batch + " T=" + seqLen + " H=" + heads
                    + " Hkv=" + kvHeads + " D=" + headDim + ": B and T must be ≥ 0, H, Hkv and D > 0");
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("query heads H=" + heads + " not divisible by kv heads Hkv=" + kvHeads);
        }
        return elements(batch, seqLen, heads, headDim);
    }

    /** batch·seqLen·heads·headDim, failing on negative sizes and int overflow. */
    static int elements(int batch, int seqLen, int heads, int headDim) {
        if (batch < 0 || seqLen < 0 || heads < 0 || headDim < 0) {
            throw new IllegalArgumentException("negative shape [" + batch + ", " + seqLen + ", " + heads + ", " + headDim + "]");
        }
        try {
            return Math.multiplyExact(Math.multiplyExact(batch, seqLen), Math.multiplyExact(heads, headDim));
        } catch (ArithmeticException overflow) {
            throw new IllegalArgumentException("shape [" + batch + ", " + seqLen + ", " + heads + ", " + headDim
                    + "] has more than 2³¹ − 1 elements");
        }
    }

    static void require(float[] array, int offset, int length, String name) {
        Objects.requireNonNull(array, name);
        requireRange(offset, length, array.length, name);
    }

    static void require(double[] array, int offset, int length, String name) {
        Objects.requireNonNull(array, name);
        requireRange(offset, length, array.length, name);
    }

    static void require(int[] array, int offset, int length, String name) {
        Objects.requireNonNull(array, name);
        requireRange(offset, length, array.length, name);
    }

    private static void requireRange(int offset, int length, int arrayLength, String name) {
        if (offset < 0 || offset > arrayLength - length) {
            throw new IllegalArgumentException(name + ": needs " + length + " elements from offset " + offset
                    + " but the array has " + arrayLength);
        }
    }
}
