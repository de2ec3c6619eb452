package dev.loraflow.core.kernels;

import static dev.loraflow.core.kernels.VectorMath.LANES;
import static dev.loraflow.core.kernels.VectorMath.PARALLEL_MIN_ELEMENTS;
import static dev.loraflow.core.kernels.VectorMath.SPECIES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Elementwise activations, float32: GELU in GPT-2's tanh form, SiLU, and the SwiGLU product of a
 * Llama MLP. Arrays are flat [n] (any shape, flattened); an output may be an input at the same
 * offset. Input gradients are written (=).
 *
 * <p>GELU uses 0.5·(1 + tanh(z)) = σ(2z), so each element needs one {@link VectorMath#exp} (within
 * 1 ulp, and the same bits whether or not C2 has compiled the kernel) and no tanh; σ(2z) is also more accurate than 1 + tanh(z) where tanh(z) ≈ −1, for
 * x ≲ −3. σ(t) = 1/(1 + e⁻ᵗ) saturates cleanly: e⁻ᵗ = +∞ gives 0, never NaN, for finite inputs.
 *
 * <p>Each kernel writes its loop out rather than passing the lane operation to a shared loop: a
 * lambda taking vectors is only fast where C2 inlines it, and a loop shared by several kernels makes
 * that call site megamorphic, so every vector would be boxed.
 */
public final class Activations {

    private static final float SQRT_2_OVER_PI = (float) Math.sqrt(2 / Math.PI);
    private static final float GELU_CUBIC = 0.044715f;
    /** 2z = x·(GELU_LINEAR + GELU_CUBIC_2·x²) with z = √(2/π)·(x + 0.044715·x³). */
    private static final float GELU_LINEAR = 2 * SQRT_2_OVER_PI;
    private static final float GELU_CUBIC_2 = 2 * SQRT_2_OVER_PI * GELU_CUBIC;

    private Activations() {}

    /** y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), GPT-2's {@code gelu_new}. x [n], y [n]. */
    public static void geluForward(float[] x, int xOff, float[] y, int yOff, int n) {
        Bounds.check(x, xOff, n, "x");
        Bounds.check(y, yOff, n, "y");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> {
            int count = to - from;
            int i = 0;
            for (int bound = SPECIES.loopBound(count); i < bound; i += LANES) {
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i);
                xv.mul(geluGate(xv)).intoArray(y, yOff + from + i);
            }
            if (i < count) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, count);
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i, tail);
                xv.mul(geluGate(xv)).intoArray(y, yOff + from + i, tail);
            }
        });
    }

    /** dx = dy·gelu′(x), written (=). dy [n], x [n] (the forward input), dx [n]. */
    public static void geluBackward(float[] dy, int dyOff, float[] x, int xOff, float[] dx, int dxOff, int n) {
        Bounds.check(dy, dyOff, n, "dy");
        Bounds.check(x, xOff, n, "x");
        Bounds.check(dx, dxOff, n, "dx");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> {
            int count = to - from;
            int i = 0;
            for (int bound = SPECIES.loopBound(count); i < bound; i += LANES) {
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i);
                FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyOff + from + i);
                dyv.mul(geluDerivative(xv)).intoArray(dx, dxOff + from + i);
            }
            if (i < count) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, count);
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i, tail);
                FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyOff + from + i, tail);
                dyv.mul(geluDerivative(xv)).intoArray(dx, dxOff + from + i, tail);
            }
        });
    }

    /** y = x·σ(x). x [n], y [n]. */
    public static void siluForward(float[] x, int xOff, float[] y, int yOff, int n) {
        Bounds.check(x, xOff, n, "x");
        Bounds.check(y, yOff, n, "y");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> {
            int count = to - from;
            int i = 0;
            for (int bound = SPECIES.loopBound(count); i < bound; i += LANES) {
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i);
                xv.mul(sigmoid(xv)).intoArray(y, yOff + from + i);
            }
            if (i < count) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, count);
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i, tail);
                xv.mul(sigmoid(xv)).intoArray(y, yOff + from + i, tail);
            }
        });
    }

    /** dx = dy·σ(x)·(1 + x·(1 − σ(x))), written (=). dy [n], x [n] (the forward input), dx [n]. */
    public static void siluBackward(float[] dy, int dyOff, float[] x, int xOff, float[] dx, int dxOff, int n) {
        Bounds.check(dy, dyOff, n, "dy");
        Bounds.check(x, xOff, n, "x");
        Bounds.check(dx, dxOff, n, "dx");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> {
            int count = to - from;
            int i = 0;
            for (int bound = SPECIES.loopBound(count); i < bound; i += LANES) {
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i);
                FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyOff + from + i);
                dyv.mul(siluDerivative(xv)).intoArray(dx, dxOff + from + i);
            }
            if (i < count) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, count);
                FloatVector xv = FloatVector.fromArray(SPECIES, x, xOff + from + i, tail);
                FloatVector dyv = FloatVector.fromArray(SPECIES, dy, dyOff + from + i, tail);
                dyv.mul(siluDerivative(xv)).intoArray(dx, dxOff + from + i, tail);
            }
        });
    }

    /** out = silu(gate) ⊙ up, the gated product of a Llama MLP. gate [n], up [n], out [n]. */
    public static void swigluForward(float[] gate, int gateOff, float[] up, int upOff, float[] out, int outOff, int n) {
        Bounds.check(gate, gateOff, n, "gate");
        Bounds.check(up, upOff, n, "up");
        Bounds.check(out, outOff, n, "out");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> {
            int count = to - from;
            int i = 0;
            for (int bound = SPECIES.loopBound(count); i < bound; i += LANES) {
                FloatVector g = FloatVector.fromArray(SPECIES, gate, gateOff + from + i);
                FloatVector u = FloatVector.fromArray(SPECIES, up, upOff + from + i);
                g.mul(sigmoid(g)).mul(u).intoArray(out, outOff + from + i);
            }
            if (i < count) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, count);
                FloatVector g = FloatVector.fromArray(SPECIES, gate, gateOff + from + i, tail);
                FloatVector u = FloatVector.fromArray(SPECIES, up, upOff + from + i, tail);
                g.mul(sigmoid(g)).mul(u).intoArray(out, outOff + from + i, tail);
            }
        });
    }

    /**
     * dGate = dOut ⊙ up ⊙ silu′(gate) and dUp = dOut ⊙ silu(gate), both written (=). dOut [n],
     * gate [n] and up [n] (the forward inputs), dGate [n], dUp [n]; dGate may be gate and dUp may be up.
     */
    public static void swigluBackward(float[] dOut, int dOutOff, float[] gate, int gateOff, float[] up, int upOff,
                                      float[] dGate, int dGateOff, float[] dUp, int dUpOff, int n) {
        Bounds.check(dOut, dOutOff, n, "dOut");
        Bounds.check(gate, gateOff, n, "gate");
        Bounds.check(up, upOff, n, "up");
        Bounds.check(dGate, dGateOff, n, "dGate");
        Bounds.check(dUp, dUpOff, n, "dUp");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> {
            int count = to - from;
            int i = 0;
            for (int bound = SPECIES.loopBound(count); i < bound; i += LANES) {
                FloatVector d = FloatVector.fromArray(SPECIES, dOut, dOutOff + from + i);
                FloatVector g = FloatVector.fromArray(SPECIES, gate, gateOff + from + i);
                FloatVector u = FloatVector.fromArray(SPECIES, up, upOff + from + i);
                FloatVector s = sigmoid(g);
                d.mul(u).mul(siluDerivative(g, s)).intoArray(dGate, dGateOff + from + i);
                d.mul(g.mul(s)).intoArray(dUp, dUpOff + from + i);
            }
            if (i < count) {
                VectorMask<Float> tail = SPECIES.indexInRange(i, count);
                FloatVector d = FloatVector.fromArray(SPECIES, dOut, dOutOff + from + i, tail);
                FloatVector g = FloatVector.fromArray(SPECIES, gate, gateOff + from + i, tail);
                FloatVector u = FloatVector.fromArray(SPECIES, up, upOff + from + i, tail);
                FloatVector s = sigmoid(g);
                d.mul(u).mul(siluDerivative(g, s)).intoArray(dGate, dGateOff + from + i, tail);
                d.mul(g.mul(s)).intoArray(dUp, dUpOff + from + i, tail);
            }
        });
    }

    /** σ(t) = 1/(1 + e⁻ᵗ). */
    private static FloatVector sigmoid(FloatVector t) {
        FloatVector ones = FloatVector.broadcast(SPECIES, 1f);
        return ones.div(VectorMath.exp(t.neg()).add(ones));
    }

    /** σ(2z) = 0.5·(1 + tanh(z)), the factor GELU multiplies x by. */
    private static FloatVector geluGate(FloatVector x) {
        return sigmoid(x.mul(x).fma(GELU_CUBIC_2, GELU_LINEAR).mul(x));
    }

    /** d/dx x·σ(2z) = σ + x·σ·(1 − σ)·d(2z)/dx, with d(2z)/dx = GELU_LINEAR + 3·GELU_CUBIC_2·x². */
    private static FloatVector geluDerivative(FloatVector x) {
        FloatVector squared = x.mul(x);
        FloatVector s = sigmoid(squared.fma(GELU_CUBIC_2, GELU_LINEAR).mul(x));
        FloatVector slope = squared.fma(3 * GELU_CUBIC_2, GELU_LINEAR);
        return x.mul(s).mul(s.neg().add(1f)).fma(slope, s);
    }

    private static FloatVector siluDerivative(FloatVector x) {
        return siluDerivative(x, sigmoid(x));
    }

    /** d/dx x·σ(x) = σ·(1 + x·(1 − σ)), given s = σ(x). */
    private static FloatVector siluDerivative(FloatVector x, FloatVector s) {
        return x.mul(s.neg().add(1f)).add(1f).mul(s);
    }
}
