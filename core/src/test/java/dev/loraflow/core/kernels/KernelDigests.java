package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.KernelChecks.gaussian;

import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.lora.LoraSpec;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.optim.GradientClipping;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * Child-JVM entry point of {@link JitIndependenceTest}: runs every kernel family on fixed seeded inputs
 * and prints one "family digest" line each, a SHA-256 of the outputs' bits. Run with a count of
 * warm-up rounds first, so that C2 has compiled the kernels before the rounds that are printed.
 *
 * <p>Sizes are odd and small: each crosses whole vectors, a masked tail and, where a kernel has
 * blocks (1024-element reduction blocks, 64-row attention blocks), a block boundary, and all of it
 * runs in a few seconds under {@code -Xint}.
 */
public final class KernelDigests {

    private static final int ROWS = 3;
    private static final int COLS = 1031;
    private static final int DIM = 77;

    private KernelDigests() {}

    public static void main(String[] args) {
        int warmupRounds = Integer.parseInt(args[0]);
        for (int round = 0; round < warmupRounds; round++) {
            digests();
        }
        System.out.println("lanes " + VectorMath.LANES);
        digests().forEach((family, digest) -> System.out.println(family + " " + digest));
    }

    static Map<String, String> digests() {
        Map<String, String> digests = new LinkedHashMap<>();
        digests.put("reductions", reductions());
        digests.put("softmax", softmax());
        digests.put("crossEntropy", crossEntropy());
        digests.put("layerNorm", layerNorm());
        digests.put("rmsNorm", rmsNorm());
        digests.put("gelu", gelu());
        digests.put("silu", silu());
        digests.put("swiglu", swiglu());
        digests.put("attention", attention());
        digests.put("rope", rope());
        digests.put("dropout", dropout());
        digests.put("gemm", gemm());
        digests.put("loraLinearAdamW", loraLinearAdamW());
        return digests;
    }

    private static String reductions() {
        float[] x = gaussian(new Random(1), 2 * COLS, 0.5, 3);
        float[] sums = {
                (float) VectorMath.sum(x, 1, COLS),
                (float) VectorMath.dot(x, 0, x, COLS, COLS),
                (float) VectorMath.sumOfSquares(x, 2, COLS + 100),
                VectorMath.max(x, 3, COLS)
        };
        return digest(sums);
    }

    /**
     * Scores spread over about ±60 with −∞ entries, so that exponentials of x − max cover the whole
     * range down to flushing to 0, and masked positions appear.
     */
    private static float[] logits(Random random) {
        float[] x = gaussian(random, ROWS * COLS, 0, 20);
        for (int i = 5; i < x.length; i += 97) {
            x[i] = Float.NEGATIVE_INFINITY;
        }
        return x;
    }

    private static String softmax() {
        Random random = new Random(2);
        float[] x = logits(random);
        float[] dy = gaussian(random, ROWS * COLS, 0, 1);
        float[] y = new float[x.length];
        float[] dx = new float[x.length];
        Softmax.softmaxForward(x, 0, y, 0, ROWS, COLS);
        Softmax.softmaxBackward(dy, 0, y, 0, dx, 0, ROWS, COLS);
        return digest(y, dx);
    }

    private static String crossEntropy() {
        Random random = new Random(3);
        float[] logits = logits(random);
        int[] targets = {17, Softmax.IGNORE_INDEX, COLS - 1};
        float[] logSumExp = new float[ROWS];
        float loss = (float) Softmax.crossEntropyForward(logits, 0, targets, 0, logSumExp, 0, ROWS, COLS);
        float[] dlogits = new float[logits.length];
        Softmax.crossEntropyBackward(logits, 0, targets, 0, logSumExp, 0, 0.5f, dlogits, 0, ROWS, COLS);
        return digest(new float[] {loss}, logSumExp, dlogits);
    }

    private static String layerNorm() {
        Random random = new Random(4);
        float[] x = gaussian(random, ROWS * DIM, 1, 2);
        float[] weight = gaussian(random, DIM, 1, 0.2);
        float[] bias = gaussian(random, DIM, 0, 0.2);
        float[] dy = gaussian(random, ROWS * DIM, 0, 1);
        float[] y = new float[x.length];
        float[] mean = new float[ROWS];
        float[] rstd = new float[ROWS];
        Norms.layerNormForward(x, 0, weight, 0, bias, 0, y, 0, mean, 0, rstd, 0, ROWS, DIM, 1e-5f);
        float[] dx = new float[x.length];
        float[] dWeight = new float[DIM];
        float[] dBias = new float[DIM];
        Norms.layerNormBackward(dy, 0, x, 0, weight, 0, mean, 0, rstd, 0, dx, 0, dWeight, 0, dBias, 0, ROWS, DIM);
        return digest(y, mean, rstd, dx, dWeight, dBias);
    }

    private static String rmsNorm() {
        Random random = new Random(5);
        float[] x = gaussian(random, ROWS * DIM, 0, 2);
        float[] weight = gaussian(random, DIM, 1, 0.2);
        float[] dy = gaussian(random, ROWS * DIM, 0, 1);
        float[] y = new float[x.length];
        float[] rstd = new float[ROWS];
        Norms.rmsNormForward(x, 0, weight, 0, y, 0, rstd, 0, ROWS, DIM, 1e-6f);
        float[] dx = new float[x.length];
        float[] dWeight = new float[DIM];
        Norms.rmsNormBackward(dy, 0, x, 0, weight, 0, rstd, 0, dx, 0, dWeight, 0, ROWS, DIM);
        return digest(y, rstd, dx, dWeight);
    }

    private static String gelu() {
        Random random = new Random(6);
        float[] x = gaussian(random, COLS, 0, 4);
        float[] dy = gaussian(random, COLS, 0, 1);
        float[] y = new float[COLS];
        float[] dx = new float[COLS];
        Activations.geluForward(x, 0, y, 0, COLS);
        Activations.geluBackward(dy, 0, x, 0, dx, 0, COLS);
        return digest(y, dx);
    }

    private static String silu() {
        Random random = new Random(7);
        float[] x = gaussian(random, COLS, 0, 4);
        float[] dy = gaussian(random, COLS, 0, 1);
        float[] y = new float[COLS];
        float[] dx = new float[COLS];
        Activations.siluForward(x, 0, y, 0, COLS);
        Activations.siluBackward(dy, 0, x, 0, dx, 0, COLS);
        return digest(y, dx);
    }

    private static String swiglu() {
        Random random = new Random(8);
        float[] gate = gaussian(random, COLS, 0, 4);
        float[] up = gaussian(random, COLS, 0, 1);
        float[] dOut = gaussian(random, COLS, 0, 1);
        float[] out = new float[COLS];
        float[] dGate = new float[COLS];
        float[] dUp = new float[COLS];
        Activations.swigluForward(gate, 0, up, 0, out, 0, COLS);
        Activations.swigluBackward(dOut, 0, gate, 0, up, 0, dGate, 0, dUp, 0, COLS);
        return digest(out, dGate, dUp);
    }

    /** 67 positions: two query blocks, the second of 3 rows. Grouped queries, 4 heads over 2 kv heads. */
    private static String attention() {
        int batch = 1;
        int seqLen = 67;
        int heads = 4;
        int kvHeads = 2;
        int headDim = 16;
        Random random = new Random(9);
        int queryElements = batch * seqLen * heads * headDim;
        int kvElements = batch * seqLen * kvHeads * headDim;
        float[] q = gaussian(random, queryElements, 0, 2);
        float[] k = gaussian(random, kvElements, 0, 2);
        float[] v = gaussian(random, kvElements, 0, 1);
        float[] dout = gaussian(random, queryElements, 0, 1);
        float[] out = new float[queryElements];
        float[] logSumExp = new float[batch * heads * seqLen];
        Attention.forward(q, 0, k, 0, v, 0, out, 0, logSumExp, 0, batch, seqLen, heads, kvHeads, headDim);
        float[] dq = new float[queryElements];
        float[] dk = new float[kvElements];
        float[] dv = new float[kvElements];
        Attention.backward(dout, 0, q, 0, k, 0, v, 0, logSumExp, 0, dq, 0, dk, 0, dv, 0,
                batch, seqLen, heads, kvHeads, headDim);
        return digest(out, logSumExp, dq, dk, dv);
    }

    private static String rope() {
        int seqLen = 5;
        int heads = 3;
        int headDim = 18;
        RopeTable table = RopeTable.create(16, headDim, 10000);
        Random random = new Random(10);
        float[] x = gaussian(random, seqLen * heads * headDim, 0, 1);
        int[] positions = {0, 3, 7, 11, 15};
        float[] y = new float[x.length];
        float[] dx = new float[x.length];
        Rope.forward(x, 0, positions, 0, table, y, 0, 1, seqLen, heads);
        Rope.backward(y, 0, positions, 0, table, dx, 0, 1, seqLen, heads);
        return digest(y, dx);
    }

    private static String dropout() {
        float[] x = gaussian(new Random(11), COLS, 0, 1);
        float[] out = new float[COLS];
        long[] mask = new long[Dropout.maskWords(COLS)];
        Dropout.forward(x, out, COLS, 0.1f, 0x5EED, mask);
        float[] dx = new float[COLS];
        Dropout.backward(out, dx, COLS, 0.1f, mask, false);
        float[] maskBits = new float[mask.length * 2];
        for (int i = 0; i < mask.length; i++) {
            maskBits[2 * i] = Float.intBitsToFloat((int) mask[i]);
            maskBits[2 * i + 1] = Float.intBitsToFloat((int) (mask[i] >>> 32));
        }
        return digest(out, dx, maskBits);
    }

    /** The blocked kernel, the row-dot kernel of a thin C, and the transposed path of a thin op(A)ᵀ. */
    private static String gemm() {
        Random random = new Random(12);
        int m = 19;
        int n = 45;
        int k = 37;
        float[] a = gaussian(random, m * k, 0, 1);
        float[] b = gaussian(random, k * n, 0, 1);
        float[] blocked = gaussian(random, m * n, 0, 1);
        Gemm.sgemm(false, false, m, n, k, 0.7f, a, 0, k, b, 0, n, 0.5f, blocked, 0, n);
        float[] thin = new float[m * 5];
        Gemm.sgemm(false, true, m, 5, k, 1f, a, 0, k, b, 0, k, 0f, thin, 0, 5);
        float[] transposed = new float[5 * n];
        Gemm.sgemm(true, false, 5, n, m, 1f, a, 0, 5, b, 0, n, 0f, transposed, 0, n);
        return digest(blocked, thin, transposed);
    }

    /** One training step of a LoRA layer with dropout: forward, backward, clipping, AdamW. */
    private static String loraLinearAdamW() {
        int in = 40;
        int out = 33;
        int rows = 7;
        Random random = new Random(13);
        float[] weight = gaussian(random, out * in, 0, 0.2);
        float[] bias = gaussian(random, out, 0, 0.1);
        LoRALinear layer = new LoRALinear("layer", in, out, weight, bias, false, new LoraSpec(4, 8f, 0.1f, false), 14);
        System.arraycopy(gaussian(random, out * 4, 0, 0.1), 0, layer.loraB().value(), 0, out * 4);
        float[] x = gaussian(random, rows * in, 0, 1);
        float[] dy = gaussian(random, rows * out, 0, 1);
        float[] y = new float[rows * out];
        float[] dx = new float[rows * in];
        LoRALinear.Activations saved = layer.newActivations(rows);
        layer.forward(x, y, rows, saved, true, 15);
        layer.backward(x, dy, dx, rows, saved, false);
        AdamW optimizer = new AdamW(layer.trainableParameters(), AdamW.Settings.defaults());
        float norm = (float) GradientClipping.clipByGlobalNorm(layer.trainableParameters(), 0.5);
        optimizer.step(1e-3f);
        return digest(y, dx, new float[] {norm}, layer.loraA().value(), layer.loraB().value());
    }

    private static String digest(float[]... arrays) {
        try {
            MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
            for (float[] array : arrays) {
                ByteBuffer bytes = ByteBuffer.allocate(4 * array.length);
                for (float value : array) {
                    bytes.putInt(Float.floatToRawIntBits(value));
                }
                sha256.update(bytes.array());
            }
            return HexFormat.of().formatHex(sha256.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }
}
