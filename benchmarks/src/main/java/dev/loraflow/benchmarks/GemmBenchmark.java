package dev.loraflow.benchmarks;

import dev.loraflow.core.kernels.Gemm;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The three matmul layouts of a linear layer at GPT-2-small training shapes: 512 rows (batch × sequence)
 * through 768→768 (attention out), 768→2304 (c_attn), 768→3072 (c_fc) and 3072→768 (mlp c_proj).
 * Each operation is 2·M·K·N floating-point operations; bench/run-kernels.sh turns times into GFLOP/s.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class GemmBenchmark {

    /** rows × in × out of the linear layer. */
    @Param({"512x768x768", "512x768x2304", "512x768x3072", "512x3072x768"})
    public String shape;

    private int m;
    private int k;
    private int n;
    private float[] x;
    private float[] w;
    private float[] y;
    private float[] dy;
    private float[] dx;
    private float[] dw;

    @Setup
    public void setUp() {
        String[] dims = shape.split("x");
        m = Integer.parseInt(dims[0]);
        k = Integer.parseInt(dims[1]);
        n = Integer.parseInt(dims[2]);
        Random random = new Random(42);
        x = gaussian(random, m * k);
        w = gaussian(random, n * k);
        dy = gaussian(random, m * n);
        y = new float[m * n];
        dx = new float[m * k];
        dw = new float[n * k];
    }

    /** Forward: Y [m, n] = X [m, k] · Wᵀ. */
    @Benchmark
    public float[] forwardXWt() {
        Gemm.matmulXWt(x, w, y, m, k, n, false);
        return y;
    }

    /** Input gradient: dX [m, k] = dY [m, n] · W [n, k]. */
    @Benchmark
    public float[] inputGradDyW() {
        Gemm.matmulDyW(dy, w, dx, m, n, k, false);
        return dx;
    }

    /** Weight gradient: dW [n, k] = dYᵀ · X. */
    @Benchmark
    public float[] weightGradDyTX() {
        Gemm.matmulDyTX(dy, x, dw, m, n, k, false);
        return dw;
    }

    static float[] gaussian(Random random, int size) {
        float[] values = new float[size];
        for (int i = 0; i < size; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }
}
