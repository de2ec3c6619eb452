package dev.loraflow.core.kernels;

/**
 * What varies in causal attention between model families: the score scale, Gemma 2's tanh soft-capping
 * of the scores, and a sliding window.
 *
 * @param scale         multiplies q·kᵀ: 1/√D in most models, query_pre_attn_scalar^−½ in Gemma 2
 * @param logitSoftcap  c > 0 turns each scaled score s into c·tanh(s/c) before the mask; 0 for none
 * @param slidingWindow W > 0 lets query i see keys i − W < j ≤ i, itself and the W − 1 before it, as
 *                      Transformers' {@code sliding_window_overlay}; 0 for every key j ≤ i
 */
public record AttentionSpec(float scale, float logitSoftcap, int slidingWindow) {

    public AttentionSpec {
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("attention scale must be positive, got " + scale);
        }
        if (logitSoftcap < 0 || !Float.isFinite(logitSoftcap)) {
            throw new IllegalArgumentException("logit soft-cap must be positive or 0 (none), got " + logitSoftcap);
        }
        if (slidingWindow < 0) {
            throw new IllegalArgumentException("sliding window must be positive or 0 (none), got " + slidingWindow);
        }
    }

    /** Plain causal attention scaled by 1/√D. */
    public static AttentionSpec causal(int headDim) {
        return new AttentionSpec((float) (1 / Math.sqrt(headDim)), 0f, 0);
    }

    /** The first key query i may see. */
    int firstVisibleKey(int query) {
        return slidingWindow > 0 ? Math.max(0, query - slidingWindow + 1) : 0;
    }

    /** s = c·tanh(s/c) over [off, off + n) in float32, as Transformers computes it; nothing without a cap. */
    void capInPlace(float[] scores, int off, int n) {
        if (logitSoftcap == 0) {
            return;
        }
        for (int i = off; i < off + n; i++) {
            scores[i] = (float) Math.tanh(scores[i] / logitSoftcap) * logitSoftcap;
        }
    }
}
