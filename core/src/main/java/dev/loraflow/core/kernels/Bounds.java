package dev.loraflow.core.kernels;

import java.util.Objects;

/**
 * Argument checks shared by the kernels. A kernel checks every range before it writes anything, so a
 * bad offset fails with a message naming the array instead of leaving a half-written output behind.
 * A range outside its array is an {@link IllegalArgumentException}, as in {@link Gemm}: kernels are
 * handed whole tensors, so it means a wrong shape or offset from the caller, not a bad index.
 */
final class Bounds {

    private Bounds() {}

    /** The element count of a [rows, cols] matrix, failing on negative sizes or int overflow. */
    static int elements(int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("negative shape [" + rows + ", " + cols + "]");
        }
        return Math.multiplyExact(rows, cols);
    }

    static void check(float[] array, int offset, int length, String name) {
        Objects.requireNonNull(array, name);
        checkRange(offset, length, array.length, name);
    }

    static void check(double[] array, int offset, int length, String name) {
        Objects.requireNonNull(array, name);
        checkRange(offset, length, array.length, name);
    }

    static void check(int[] array, int offset, int length, String name) {
        Objects.requireNonNull(array, name);
        checkRange(offset, length, array.length, name);
    }

    private static void checkRange(int offset, int length, int arrayLength, String name) {
        if (offset < 0 || length < 0 || offset > arrayLength - length) {
            throw new IllegalArgumentException(
                    name + ": range [" + offset + ", " + offset + " + " + length + ") outside array of length " + arrayLength);
        }
    }
}
