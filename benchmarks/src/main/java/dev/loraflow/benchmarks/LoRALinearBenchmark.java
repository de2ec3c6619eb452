package dev.loraflow.benchmarks;

import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.lora.LoraSpec;
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
 * One training step's forward and backward through GPT-2's c_attn (768→2304, 512 rows): the frozen
 * layer alone (rank 0) against the same layer with an r = 8 adapter, with and without LoRA dropout.
 * The adapter's cost is (lora − frozen) / frozen; the difference is a few percent of a noisy total, so
 * this benchmark runs more forks and iterations than the others.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 4, time = 1)
@Measurement(iterations = 8, time = 1)
@Fork(value = 3, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class LoRALinearBenchmark {

    private static final int ROWS = 512;
    private static final int IN = 768;
    private static final int OUT = 2304;

    /** rank/dropout of the layer; rank 0 is the frozen layer alone. */
    @Param({"0/0", "8/0", "8/0.05"})
    public String adapter;

    private LoRALinear layer;
    private LoRALinear.Activations saved;
    private float[] x;
    private float[] y;
    private float[] dy;
    private float[] dx;
    private long step;

    @Setup
    public void setUp() {
        String[] parts = adapter.split("/");
        Random random = new Random(7);
        layer = new LoRALinear("h.0.attn.c_attn", IN, OUT, GemmBenchmark.gaussian(random, IN * OUT), new float[OUT],
                true, new LoraSpec(Integer.parseInt(parts[0]), 16f, Float.parseFloat(parts[1]), false), 1);
        float[] b = layer.loraB().value();
        System.arraycopy(GemmBenchmark.gaussian(random, b.length), 0, b, 0, b.length);
        saved = layer.newActivations(ROWS);
        x = GemmBenchmark.gaussian(random, ROWS * IN);
        dy = GemmBenchmark.gaussian(random, ROWS * OUT);
        y = new float[ROWS * OUT];
        dx = new float[ROWS * IN];
    }

    @Benchmark
    public float[] forwardBackward() {
        layer.forward(x, y, ROWS, saved, true, step++);
        layer.backward(x, dy, dx, ROWS, saved, false);
        return dx;
    }
}
