package dev.loraflow.core.peft;

import java.util.Arrays;
import java.util.Objects;

/**
 * The two LoRA factors of one module, in PEFT's layout: {@code a} is lora_A.weight, shape
 * [r, inFeatures], and {@code b} is lora_B.weight, shape [outFeatures, r], both row-major, so the
 * update is {@code ΔW = scaling · B·A} of shape [outFeatures, inFeatures].
 *
 * <p>The arrays are held, not copied, because adapters of large models carry hundreds of megabytes
 * of them; callers that keep training must not share them with a stored record they still need
 * unchanged.
 */
public record LoraWeights(String modulePath, int r, int inFeatures, int outFeatures, float[] a, float[] b) {

    public LoraWeights {
        Objects.requireNonNull(modulePath, "modulePath");
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        if (modulePath.isEmpty()) {
            throw new IllegalArgumentException("modulePath must not be empty");
        }
        if (r <= 0 || inFeatures <= 0 || outFeatures <= 0) {
            throw new IllegalArgumentException(modulePath + ": r, inFeatures and outFeatures must be positive, got r="
                    + r + ", in=" + inFeatures + ", out=" + outFeatures);
        }
        if (a.length != (long) r * inFeatures) {
            throw new IllegalArgumentException(modulePath + ": lora_A [" + r + ", " + inFeatures + "] needs "
                    + (long) r * inFeatures + " values, got " + a.length);
        }
        if (b.length != (long) outFeatures * r) {
            throw new IllegalArgumentException(modulePath + ": lora_B [" + outFeatures + ", " + r + "] needs "
                    + (long) outFeatures * r + " values, got " + b.length);
        }
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof LoraWeights that
                && modulePath.equals(that.modulePath)
                && r == that.r
                && inFeatures == that.inFeatures
                && outFeatures == that.outFeatures
                && Arrays.equals(a, that.a)
                && Arrays.equals(b, that.b);
    }

    @Override
    public int hashCode() {
        return Objects.hash(modulePath, r, inFeatures, outFeatures, Arrays.hashCode(a), Arrays.hashCode(b));
    }

    @Override
    public String toString() {
        return "LoraWeights[" + modulePath + ", r=" + r + ", in=" + inFeatures + ", out=" + outFeatures + "]";
    }
}
