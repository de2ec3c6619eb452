package dev.loraflow.core.kernels;

/**
 * Shape checks of the attention and RoPE kernels and their references; array ranges go through
 * {@link Bounds}.
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
}
