package dev.loraflow.core.model;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a Hugging Face checkpoint: its canonical name, shape and what it is for.
 *
 * @param name canonical tensor name, e.g. {@code h.0.attn.c_attn.weight} or {@code model.norm.weight}
 * @param shape dimensions in checkpoint order (GPT-2's Conv1D weights are [in, out], Linear ones [out, in])
 * @param role what the tensor is, which decides how a fresh model initialises it
 */
public record WeightSpec(String name, long[] shape, Role role) {

    /** What a tensor is in the model. */
    public enum Role {
        TOKEN_EMBEDDING,
        POSITION_EMBEDDING,
        NORM_WEIGHT,
        NORM_BIAS,
        LINEAR_WEIGHT,
        LINEAR_BIAS,
        /** The untied output projection ({@code lm_head.weight}). */
        OUTPUT_HEAD
    }

    public WeightSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(role, "role");
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long numel() {
        long count = 1;
        for (long dim : shape) {
            count = Math.multiplyExact(count, dim);
        }
        return count;
    }

    // Records compare arrays by identity; two specs with equal shapes are the same spec.
    @Override
    public boolean equals(Object other) {
        return other instanceof WeightSpec(String otherName, long[] otherShape, Role otherRole)
                && name.equals(otherName) && Arrays.equals(shape, otherShape) && role == otherRole;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, Arrays.hashCode(shape), role);
    }

    @Override
    public String toString() {
        return name + " " + Arrays.toString(shape) + " " + role;
    }
}
