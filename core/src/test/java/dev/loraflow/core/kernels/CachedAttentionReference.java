package dev.loraflow.core.kernels;

/**
 * Plain double-precision loops with the contract of {@link CachedAttention#forward}, on tensors in
 * the layout a projection produces rather than the cache's: the ground truth the kernel is tested
 * against.
 */
final class CachedAttentionReference {

    private CachedAttentionReference() {}

    /**
     * Row i of q, at position past + i, attends to positions 0..past+i.
     *
     * @param q   [count, H, D]
     * @param k   [past + count, Hkv, D]
     * @param v   [past + count, Hkv, D]
     * @return out [count, H, D]
     */
    static double[] forward(double[] q, double[] k, double[] v, int past, int count, int heads, int kvHeads, int headDim) {
        double[] out = new double[count * heads * headDim];
        double scale = 1 / Math.sqrt(headDim);
        double[] probabilities = new double[past + count];
        for (int i = 0; i < count; i++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                int queryRow = (i * heads + h) * headDim;
                int visible = past + i + 1;
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < visible; j++) {
                    int keyRow = (j * kvHeads + kvh) * headDim;
                    double score = 0;
                    for (int d = 0; d < headDim; d++) {
                        score += q[queryRow + d] * k[keyRow + d];
                    }
                    probabilities[j] = score * scale;
                    max = Math.max(max, probabilities[j]);
                }
                double sum = 0;
                for (int j = 0; j < visible; j++) {
                    probabilities[j] = Math.exp(probabilities[j] - max);
                    sum += probabilities[j];
                }
                for (int j = 0; j < visible; j++) {
                    int valueRow = (j * kvHeads + kvh) * headDim;
                    for (int d = 0; d < headDim; d++) {
                        out[queryRow + d] += probabilities[j] / sum * v[valueRow + d];
                    }
                }
            }
        }
        return out;
    }
}
