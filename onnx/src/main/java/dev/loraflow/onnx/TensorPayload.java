package dev.loraflow.onnx;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * The little-endian bytes of one weight tensor, produced when written: ONNX's raw_data, or a span of the
 * external data file. Float32 from the model's own array (a transposed view lets a Llama weight stored
 * [out, in] be written [in, out] without a transposed copy in memory), or the bytes of a quantized weight.
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
}
