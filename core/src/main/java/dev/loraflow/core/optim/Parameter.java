package dev.loraflow.core.optim;

import java.util.Objects;

/** A trainable tensor and its gradient, flattened row-major; the gradient accumulates until zeroed. */
public record Parameter(String name, float[] value, float[] grad) {

    public Parameter {
        Objects.requireNonNull(name, "name");
        if (value.length != grad.length) {
            throw new IllegalArgumentException(name + ": value has " + value.length + " elements, grad " + grad.length);
        }
    }

    public Parameter(String name, float[] value) {
        this(name, value, new float[value.length]);
    }

    public int size() {
        return value.length;
    }

    public void zeroGrad() {
        java.util.Arrays.fill(grad, 0f);
    }
}
