package dev.loraflow.core.quant;

import dev.loraflow.core.kernels.FrozenMatrix;

/** Reads runs of a matrix flattened row-major, across row ends: what blockwise quantization needs. */
final class FlatReader {

    private final FrozenMatrix source;

    FlatReader(FrozenMatrix source) {
        this.source = source;
    }

    /** dst[0, count) = the flattened elements [start, start+count). */
    void read(long start, int count, float[] dst) {
        int done = 0;
        while (done < count) {
            long index = start + done;
            int row = (int) (index / source.cols());
            int col = (int) (index % source.cols());
            int run = Math.min(count - done, source.cols() - col);
            source.widen(row, col, run, dst, done);
            done += run;
        }
    }
}
