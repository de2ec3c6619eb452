package dev.loraflow.benchmarks;

import dev.loraflow.core.kernels.Activations;
import dev.loraflow.core.kernels.Attention;
import dev.loraflow.core.kernels.Softmax;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The kernels whose time goes largely into exponentials, at GPT-2-small training shapes of 512 rows:
 * the language-model head's cross-entropy over the 50257-token vocabulary, causal attention of one
 * 512-token sequence (12 heads of 64), and GELU over the MLP's 3072 features.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class ExpKernelsBenchmark {

    private static final int ROWS = 512;
    private static final int VOCAB = 50257;
    private static final int HEADS = 12;
    private static final int HEAD_DIM = 64;
    private static final int MLP_FEATURES = 3072;

    private float[] logits;
    private int[] targets;
    private float[] logSumExp;
    private float[] dlogits;
    private float[] q;
    private float[] k;
    private float[] v;
    private float[] out;
    private float[] attentionLogSumExp;
    private float[] dout;
    private float[] dq;
    private float[] dk;
    private float[] dv;
    private float[] preActivation;
    private float[] activation;

    @Setup
    public void setUp() {
        Random random = new Random(42);
        logits = GemmBenchmark.gaussian(random, ROWS * VOCAB);
        targets = new int[ROWS];
        for (int r = 0; r < ROWS; r++) {
            targets[r] = random.nextInt(VOCAB);
        }
        logSumExp = new float[ROWS];
        dlogits = new float[ROWS * VOCAB];
        int attentionElements = ROWS * HEADS * HEAD_DIM;
        q = GemmBenchmark.gaussian(random, attentionElements);
        k = GemmBenchmark.gaussian(random, attentionElements);
        v = GemmBenchmark.gaussian(random, attentionElements);
        dout = GemmBenchmark.gaussian(random, attentionElements);
        out = new float[attentionElements];
        attentionLogSumExp = new float[HEADS * ROWS];
        dq = new float[attentionElements];
        dk = new float[attentionElements];
        dv = new float[attentionElements];
        preActivation = GemmBenchmark.gaussian(random, ROWS * MLP_FEATURES);
        activation = new float[ROWS * MLP_FEATURES];
        attentionForward();
        crossEntropyForward();
    }

    /** logits [512, 50257] → mean loss and per-row log-sum-exp. */
    @Benchmark
    public double crossEntropyForward() {
        return Softmax.crossEntropyForward(logits, 0, targets, 0, logSumExp, 0, ROWS, VOCAB);
    }

    /** dlogits [512, 50257] from the saved log-sum-exp. */
    @Benchmark
    public float[] crossEntropyBackward() {
        Softmax.crossEntropyBackward(logits, 0, targets, 0, logSumExp, 0, 1f, dlogits, 0, ROWS, VOCAB);
        return dlogits;
    }

    /** q, k, v [1, 512, 12, 64] → out [1, 512, 12, 64]. */
    @Benchmark
    public float[] attentionForward() {
        Attention.forward(q, 0, k, 0, v, 0, out, 0, attentionLogSumExp, 0, 1, ROWS, HEADS, HEADS, HEAD_DIM);
        return out;
    }

    @Benchmark
    public float[] attentionBackward() {
        Attention.backward(dout, 0, q, 0, k, 0, v, 0, attentionLogSumExp, 0, dq, 0, dk, 0, dv, 0,
                1, ROWS, HEADS, HEADS, HEAD_DIM);
        return dq;
    }

    /** GELU over [512, 3072]. */
    @Benchmark
    public float[] geluForward() {
        Activations.geluForward(preActivation, 0, activation, 0, ROWS * MLP_FEATURES);
        return activation;
    }
}
