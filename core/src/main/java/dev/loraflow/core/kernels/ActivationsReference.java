package dev.loraflow.core.kernels;

/**
 * Plain double-precision loops with the same contracts as {@link Activations}: the ground truth the
 * vectorized float kernels are tested against. GELU is computed in its defining tanh form here, so
 * the tests also check the σ(2z) rewriting of the fast path.
 */
public final class ActivationsReference {

    private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
    private static final double GELU_CUBIC = 0.044715;

    private ActivationsReference() {}

    /** y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). x [n], y [n]. */
    public static void geluForward(double[] x, int xOff, double[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) {
            double v = x[xOff + i];
            y[yOff + i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
        }
    }

    /** dx = dy·gelu′(x), written (=). dy [n], x [n], dx [n]. */
    public static void geluBackward(double[] dy, int dyOff, double[] x, int xOff, double[] dx, int dxOff, int n) {
        for (int i = 0; i < n; i++) {
            double v = x[xOff + i];
            double tanh = Math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
            double sech2 = 1 - tanh * tanh;
            double derivative = 0.5 * (1 + tanh) + 0.5 * v * sech2 * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * v * v);
            dx[dxOff + i] = dy[dyOff + i] * derivative;
        }
    }

    /** y = x·σ(x). x [n], y [n]. */
    public static void siluForward(double[] x, int xOff, double[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] = x[xOff + i] * sigmoid(x[xOff + i]);
        }
    }

    /** dx = dy·σ(x)·(1 + x·(1 − σ(x))), written (=). dy [n], x [n], dx [n]. */
    public static void siluBackward(double[] dy, int dyOff, double[] x, int xOff, double[] dx, int dxOff, int n) {
        for (int i = 0; i < n; i++) {
            dx[dxOff + i] = dy[dyOff + i] * siluDerivative(x[xOff + i]);
        }
    }

    /** out = silu(gate) ⊙ up. gate [n], up [n], out [n]. */
    public static void swigluForward(double[] gate, int gateOff, double[] up, int upOff, double[] out, int outOff, int n) {
        for (int i = 0; i < n; i++) {
            double g = gate[gateOff + i];
            out[outOff + i] = g * sigmoid(g) * up[upOff + i];
        }
    }

    /** dGate = dOut ⊙ up ⊙ silu′(gate), dUp = dOut ⊙ silu(gate), both written (=). All [n]. */
    public static void swigluBackward(double[] dOut, int dOutOff, double[] gate, int gateOff, double[] up, int upOff,
                                      double[] dGate, int dGateOff, double[] dUp, int dUpOff, int n) {
        for (int i = 0; i < n; i++) {
            double d = dOut[dOutOff + i];
            double g = gate[gateOff + i];
            double u = up[upOff + i];
            dGate[dGateOff + i] = d * u * siluDerivative(g);
            dUp[dUpOff + i] = d * g * sigmoid(g);
        }
    }

    private static double sigmoid(double t) {
        return 1 / (1 + Math.exp(-t));
    }

    private static double siluDerivative(double x) {
        double s = sigmoid(x);
        return s * (1 + x * (1 - s));
    }
}
