package dev.loraflow.onnx;

import java.util.Arrays;
import java.util.Objects;

/**
 * A float32 input to feed an exported graph, e.g. an adapter's A or B.
 *
 * @param values row-major, held as given
 * @param shape  dimensions, whose product is values.length
 */
public record FloatTensor(float[] values, long[] shape) {

    public FloatTensor {
        Objects.requireNonNull(values, "values");
        shape = shape.clone();
        long elements = 1;
        for (long dim : shape) {
            if (dim < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            elements = Math.multiplyExact(elements, dim);
        }
        if (elements != values.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + elements + " values, got "
                    + values.length);
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }
}
