package dev.loraflow.core.model;

import java.util.Objects;

/**
 * A linear projection of the model, the kind of module LoRA can adapt.
 *
 * @param path canonical module path, the weight's name without {@code .weight}
 * @param in input features
 * @param out output features
 * @param fanInFanOut whether the weight is stored [in, out] (GPT-2's Conv1D) rather than [out, in]
 * @param outputLayer whether this is the output head, which PEFT's "all-linear" leaves out
 */
public record LinearModule(String path, int in, int out, boolean fanInFanOut, boolean outputLayer) {

    public LinearModule {
        Objects.requireNonNull(path, "path");
        if (in <= 0 || out <= 0) {
            throw new IllegalArgumentException(path + ": features must be positive, got in=" + in + ", out=" + out);
        }
    }

    /** The last path component, e.g. {@code c_attn}: what PEFT's "all-linear" collects. */
    public String baseName() {
        return path.substring(path.lastIndexOf('.') + 1);
    }
}
