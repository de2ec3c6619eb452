package dev.loraflow.benchmarks;

import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.Gemm;
import dev.loraflow.core.kernels.HalfMatrix;
import dev.loraflow.core.quant.Nf4Matrix;
import dev.loraflow.core.safetensors.HalfFloats;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
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
 * The {@code ...Bf16}, {@code ...F16} and {@code ...Nf4} variants take the weight as a frozen operand (BF16 or F16
 * off the heap, or NF4), widened as it is packed: the goal is within 10 % of the float32 ones; {@code widen...}
 * times the widening alone.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class GemmBenchmark {

    private static final ValueLayout.OfShort U16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

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
    private FrozenMatrix wBf16;
    private FrozenMatrix wF16;
    private FrozenMatrix wNf4;

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
        Arena arena = Arena.ofShared();
        MemorySegment bf16 = arena.allocate(2L * n * k);
        MemorySegment f16 = arena.allocate(2L * n * k);
        for (int i = 0; i < n * k; i++) {
            bf16.setAtIndex(U16_LE, i, HalfFloats.toBf16(w[i]));
            f16.setAtIndex(U16_LE, i, HalfFloats.toF16(w[i]));
        }
        wBf16 = new HalfMatrix(bf16, n, k, HalfMatrix.Format.BF16);
        wF16 = new HalfMatrix(f16, n, k, HalfMatrix.Format.F16);
        wNf4 = Nf4Matrix.quantize(wBf16, true, arena);
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

    /** Forward with the weight frozen in BF16. */
    @Benchmark
    public float[] forwardXWtBf16() {
        Gemm.sgemm(false, true, m, n, k, 1f, x, 0, k, wBf16, 0f, y, 0, n, null);
        return y;
    }

    /** Input gradient with the weight frozen in BF16. */
    @Benchmark
    public float[] inputGradDyWBf16() {
        Gemm.sgemm(false, false, m, k, n, 1f, dy, 0, n, wBf16, 0f, dx, 0, k, null);
        return dx;
    }

    /** Forward with the weight frozen in F16. */
    @Benchmark
    public float[] forwardXWtF16() {
        Gemm.sgemm(false, true, m, n, k, 1f, x, 0, k, wF16, 0f, y, 0, n, null);
        return y;
    }

    /** Input gradient with the weight frozen in F16. */
    @Benchmark
    public float[] inputGradDyWF16() {
        Gemm.sgemm(false, false, m, k, n, 1f, dy, 0, n, wF16, 0f, dx, 0, k, null);
        return dx;
    }

    /** Forward with the weight frozen in NF4. */
    @Benchmark
    public float[] forwardXWtNf4() {
        Gemm.sgemm(false, true, m, n, k, 1f, x, 0, k, wNf4, 0f, y, 0, n, null);
        return y;
    }

    /** Input gradient with the weight frozen in NF4. */
    @Benchmark
    public float[] inputGradDyWNf4() {
        Gemm.sgemm(false, false, m, k, n, 1f, dy, 0, n, wNf4, 0f, dx, 0, k, null);
        return dx;
    }

    /** The widening alone, which the frozen GEMMs do as they pack: the BF16 weight to float32, row by row. */
    @Benchmark
    public float[] widenBf16() {
        return widenWhole(wBf16);
    }

    @Benchmark
    public float[] widenF16() {
        return widenWhole(wF16);
    }

    @Benchmark
    public float[] widenNf4() {
        return widenWhole(wNf4);
    }

    private float[] widenWhole(FrozenMatrix weight) {
        for (int row = 0; row < n; row++) {
            weight.widen(row, 0, k, dw, row * k);
        }
        return dw;
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
