package dev.loraflow.core.lora;

/**
 * The LoRA hyper-parameters of one adapted layer. rank 0 means no adapter (a plain linear layer).
 *
 * @param rank      r, the inner dimension of B·A
 * @param alpha     α; the update is scaled by α/r, or α/√r with rsLoRA
 * @param dropout   probability of dropping an input element of the LoRA branch (only), in [0, 1)
 * @param useRslora rank-stabilised scaling α/√r
 */
public record LoraSpec(int rank, float alpha, float dropout, boolean useRslora) {

    public LoraSpec {
        if (rank < 0) {
            throw new IllegalArgumentException("LoRA rank must be >= 0, got " + rank);
        }
        if (!(dropout >= 0f && dropout < 1f)) {
            throw new IllegalArgumentException("LoRA dropout must be in [0, 1), got " + dropout);
        }
        if (!Float.isFinite(alpha)) {
            throw new IllegalArgumentException("LoRA alpha must be finite, got " + alpha);
        }
    }

    /** The factor s in h = W0·x + s·B·A·x. */
    public float scaling() {
        if (rank == 0) {
            return 0f;
        }
        return useRslora ? (float) (alpha / Math.sqrt(rank)) : alpha / rank;
    }
}
