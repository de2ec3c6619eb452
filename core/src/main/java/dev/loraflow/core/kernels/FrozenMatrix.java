package dev.loraflow.core.kernels;

/**
 * A weight matrix [rows, cols] that training never changes, held in whatever form costs least memory
 * (float32 on the heap, BF16/F16 as mapped from the checkpoint, or quantized) and widened to float32
 * only a block at a time, as {@link Gemm#sgemm(boolean, boolean, int, int, int, float, float[], int, int,
 * FrozenMatrix, float, float[], int, int, Epilogue)} packs it.
 */
public interface FrozenMatrix {

    int rows();

    int cols();

    /** dst[dstOff + i] = W[row, col + i] as float32, for i in [0, count); exact for float formats. */
    void widen(int row, int col, int count, float[] dst, int dstOff);

    /** Bytes the matrix occupies, wherever it lives. */
    long bytes();

    /** How it is stored: {@code f32}, {@code bf16}, {@code f16}, {@code nf4} or {@code int8}. */
    String format();

    /** Every element widened: [rows·cols] row-major (tests and small models only). */
    default float[] toFloat32() {
        float[] out = new float[Math.multiplyExact(rows(), cols())];
        for (int row = 0; row < rows(); row++) {
            widen(row, 0, cols(), out, row * cols());
        }
        return out;
    }

    /** A float32 array [rows, cols] held as it is (referenced, not copied). */
    static FrozenMatrix of(float[] values, int rows, int cols) {
        if ((long) rows * cols != values.length) {
            throw new IllegalArgumentException(rows + "×" + cols + " matrix from " + values.length + " values");
        }
        return new FrozenMatrix() {
            @Override
            public int rows() {
                return rows;
            }

            @Override
            public int cols() {
                return cols;
            }

            @Override
            public void widen(int row, int col, int count, float[] dst, int dstOff) {
                System.arraycopy(values, row * cols + col, dst, dstOff, count);
            }

            @Override
            public long bytes() {
                return 4L * values.length;
            }

            @Override
            public String format() {
                return "f32";
            }

            @Override
            public float[] toFloat32() {
                return values.clone();
            }
        };
    }
}
