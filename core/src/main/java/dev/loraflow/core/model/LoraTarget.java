package dev.loraflow.core.model;

import java.util.Objects;

/**
 * A linear module that carries a LoRA adapter, with the rank and alpha PEFT gives it.
 *
 * @param modulePath the module's path as PEFT names it, e.g. {@code transformer.h.0.attn.c_attn}
 * @param in input features
 * @param out output features
 * @param fanInFanOut whether the base weight is stored [in, out], so merging transposes B·A
 * @param rank LoRA rank r of this module
 * @param alpha LoRA alpha of this module
 * @param scaling the factor B·A is multiplied by: alpha/r, or alpha/√r with rsLoRA
 */
public record LoraTarget(String modulePath, int in, int out, boolean fanInFanOut, int rank, double alpha, double scaling) {

    public LoraTarget {
        Objects.requireNonNull(modulePath, "modulePath");
    }
}
