package dev.loraflow.core.kernels;

/**
 * Plain double-precision loops with the same contracts as {@link VectorMath}: the ground truth the
 * vectorized float kernels are tested against.
 */
public final class VectorMathReference {

    private VectorMathReference() {}

    /** out = a + b. a [n], b [n], out [n]. */
    public static void add(double[] a, int aOff, double[] b, int bOff, double[] out, int outOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] = a[aOff + i] + b[bOff + i];
        }
    }

    /** y += x. x [n], y [n]. */
    public static void addInPlace(double[] x, int xOff, double[] y, int yOff, int n) {
        add(x, xOff, y, yOff, y, yOff, n);
    }

    /** out = a ⊙ b. a [n], b [n], out [n]. */
    public static void mul(double[] a, int aOff, double[] b, int bOff, double[] out, int outOff, int n) {
        for (int i = 0; i < n; i++) {
            out[outOff + i] = a[aOff + i] * b[bOff + i];
        }
    }

    /** x *= alpha. x [n]. */
    public static void scale(double alpha, double[] x, int xOff, int n) {
        for (int i = 0; i < n; i++) {
            x[xOff + i] *= alpha;
        }
    }

    /** y += alpha·x. x [n], y [n]. */
    public static void axpy(double alpha, double[] x, int xOff, double[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    /** x[i] = value. x [n]. */
    public static void fill(double[] x, int xOff, int n, double value) {
        for (int i = 0; i < n; i++) {
            x[xOff + i] = value;
        }
    }

    /** x[i] = 0. x [n]. */
    public static void zero(double[] x, int xOff, int n) {
        fill(x, xOff, n, 0);
    }

    /** Σ x. x [n]. */
    public static double sum(double[] x, int xOff, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += x[xOff + i];
        }
        return sum;
    }

    /** Σ a ⊙ b. a [n], b [n]. */
    public static double dot(double[] a, int aOff, double[] b, int bOff, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += a[aOff + i] * b[bOff + i];
        }
        return sum;
    }

    /** Σ x². x [n]. */
    public static double sumOfSquares(double[] x, int xOff, int n) {
        return dot(x, xOff, x, xOff, n);
    }

    /** max x, or −∞ for n = 0. x [n]. */
    public static double max(double[] x, int xOff, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[xOff + i]);
        }
        return max;
    }
}
