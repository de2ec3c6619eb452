package dev.loraflow.onnx;

import dev.loraflow.core.kernels.FrozenMatrix;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.function.Supplier;

/**
 * The little-endian bytes of one weight tensor, produced when written: ONNX's raw_data, or a span of the
 * external data file. Float32 from the model's own array (a transposed view lets a Llama weight stored
 * [out, in] be written [in, out] without a transposed copy in memory), from a frozen matrix (BF16/F16
 * mapped from the checkpoint) widened a chunk at a time as it is written, or from a deferred payload (a
 * merged weight) computed only when its turn comes, so writing a model holds about one tensor at a time;
 * or the bytes of a quantized weight.
 */
sealed interface TensorPayload {

    /** Floats converted per write call: 256 KiB of bytes. */
    int CHUNK = 1 << 16;

    long byteCount();

    void writeTo(OutputStream out) throws IOException;

    /** The array as it is, row-major. */
    record Plain(float[] values) implements TensorPayload {
        @Override
        public long byteCount() {
            return 4L * values.length;
        }

        @Override
        public void writeTo(OutputStream out) throws IOException {
            ByteBuffer bytes = ByteBuffer.allocate(4 * Math.min(CHUNK, values.length)).order(ByteOrder.LITTLE_ENDIAN);
            FloatBuffer floats = bytes.asFloatBuffer();
            for (int from = 0; from < values.length; from += CHUNK) {
                int count = Math.min(CHUNK, values.length - from);
                floats.clear();
                floats.put(values, from, count);
                out.write(bytes.array(), 0, 4 * count);
            }
        }
    }

    /** {@code values} is [rows, cols]; the payload is its transpose [cols, rows]. */
    record Transposed(float[] values, int rows, int cols) implements TensorPayload {
        public Transposed {
            if ((long) rows * cols != values.length) {
                throw new IllegalArgumentException("[" + rows + ", " + cols + "] does not hold " + values.length + " values");
            }
        }

        @Override
        public long byteCount() {
            return 4L * values.length;
        }

        @Override
        public void writeTo(OutputStream out) throws IOException {
            // A chunk is a band of output rows (source columns); the source is read row by row within the band.
            int bandCols = Math.max(1, CHUNK / rows);
            ByteBuffer bytes = ByteBuffer.allocate(4 * rows * Math.min(bandCols, cols)).order(ByteOrder.LITTLE_ENDIAN);
            FloatBuffer floats = bytes.asFloatBuffer();
            for (int firstCol = 0; firstCol < cols; firstCol += bandCols) {
                int band = Math.min(bandCols, cols - firstCol);
                for (int row = 0; row < rows; row++) {
                    int source = row * cols + firstCol;
                    for (int c = 0; c < band; c++) {
                        floats.put(c * rows + row, values[source + c]);
                    }
                }
                out.write(bytes.array(), 0, 4 * rows * band);
            }
        }
    }

    /** Bytes already encoded: an int8 or packed int4 weight. */
    record Encoded(byte[] bytes) implements TensorPayload {
        @Override
        public long byteCount() {
            return bytes.length;
        }

        @Override
        public void writeTo(OutputStream out) throws IOException {
            out.write(bytes);
        }
    }

    /** A frozen matrix [rows, cols] widened as it is written; its transpose [cols, rows] when {@code transposed}. */
    record Widened(FrozenMatrix matrix, boolean transposed) implements TensorPayload {
        @Override
        public long byteCount() {
            return 4L * matrix.rows() * matrix.cols();
        }

        @Override
        public void writeTo(OutputStream out) throws IOException {
            if (transposed) {
                writeTransposed(out);
                return;
            }
            ByteBuffer bytes = ByteBuffer.allocate(4 * CHUNK).order(ByteOrder.LITTLE_ENDIAN);
            FloatBuffer floats = bytes.asFloatBuffer();
            float[] chunk = new float[CHUNK];
            int filled = 0;
            for (int row = 0; row < matrix.rows(); row++) {
                for (int col = 0; col < matrix.cols(); ) {
                    int count = Math.min(matrix.cols() - col, CHUNK - filled);
                    matrix.widen(row, col, count, chunk, filled);
                    filled += count;
                    col += count;
                    if (filled == CHUNK) {
                        floats.clear();
                        floats.put(chunk, 0, filled);
                        out.write(bytes.array(), 0, 4 * filled);
                        filled = 0;
                    }
                }
            }
            floats.clear();
            floats.put(chunk, 0, filled);
            out.write(bytes.array(), 0, 4 * filled);
        }

        /** As {@link Transposed}: a band of output rows (source columns) at a time, the source widened row by row. */
        private void writeTransposed(OutputStream out) throws IOException {
            int rows = matrix.rows();
            int cols = matrix.cols();
            int bandCols = Math.max(1, CHUNK / rows);
            ByteBuffer bytes = ByteBuffer.allocate(4 * rows * Math.min(bandCols, cols)).order(ByteOrder.LITTLE_ENDIAN);
            FloatBuffer floats = bytes.asFloatBuffer();
            float[] sourceRow = new float[Math.min(bandCols, cols)];
            for (int firstCol = 0; firstCol < cols; firstCol += bandCols) {
                int band = Math.min(bandCols, cols - firstCol);
                for (int row = 0; row < rows; row++) {
                    matrix.widen(row, firstCol, band, sourceRow, 0);
                    for (int c = 0; c < band; c++) {
                        floats.put(c * rows + row, sourceRow[c]);
                    }
                }
                out.write(bytes.array(), 0, 4 * rows * band);
            }
        }
    }

    /**
     * A payload made only when it is written and dropped afterwards, e.g. a weight with its adapter merged.
     *
     * @param byteCount what the payload {@code make} gives will hold
     */
    record Deferred(long byteCount, Supplier<TensorPayload> make) implements TensorPayload {
        @Override
        public void writeTo(OutputStream out) throws IOException {
            TensorPayload payload = make.get();
            if (payload.byteCount() != byteCount) {
                throw new IllegalStateException("a deferred payload of " + byteCount + " bytes made " + payload.byteCount());
            }
            payload.writeTo(out);
        }
    }
}
