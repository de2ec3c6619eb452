package dev.loraflow.core.kernels;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vectorized float32 primitives on flat arrays with explicit offsets. As in Gemm and BLAS,
 * inputs come first and the array written last. Calls of at least twice
 * {@link #PARALLEL_MIN_ELEMENTS} elements are split over the cores, in a way that never changes the
 * order of the arithmetic, so the thread count does not change a result.
 *
 * <p>Results do not depend on the JIT either. Until C2 compiles a method the Vector API runs a Java
 * fallback, which agrees with C2's intrinsics on the exact lane operations (add, mul, fma, div,
 * sqrt, min, max, compare, blend, rearrange, convert, shifts) but not on {@code reduceLanes},
 * whose order of additions is left to the implementation, nor on {@code EXP} and the other
 * transcendental operators ({@link Math#exp} per lane in the fallback, SVML in C2). So no kernel
 * uses those: lanes are summed by {@link #sumLanes} in a fixed order and exponentials come from
 * {@link #exp}, built from exact operations only. A run resumed in a new JVM, whose first steps are
 * interpreted, therefore reproduces an uninterrupted run bit for bit (JitIndependenceTest checks).
 *
 * <p>The reductions ({@link #sum}, {@link #dot}, {@link #sumOfSquares}) add blocks of
 * {@value #REDUCTION_BLOCK} elements in float vector lanes and the block totals in double, which
 * keeps the relative error near 1e-7 even over 10⁸ elements (a plain float running sum stops growing
 * at 2²⁴ equal terms).
 */
public final class VectorMath {

    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();

    /**
     * Fewest elements worth handing to another core. Waking a parked pool thread costs tens of
     * microseconds on a virtual machine, so a task should have ~100 µs of work: on a 2-vCPU VM,
     * calls of 2¹⁶–2¹⁸ elements ran slower split in two than on one thread, and calls of 2¹⁹ or
     * more ran 1.6–2× faster (add, GELU, LayerNorm) while the second vCPU was otherwise idle.
     */
    static final int PARALLEL_MIN_ELEMENTS = 1 << 18;

    /** Each of the four accumulators of a block adds {@code REDUCTION_BLOCK / (4·LANES)} terms per lane. */
    private static final int REDUCTION_BLOCK = 1024;
    /** Elements per partial of a parallel reduction: fixed, so the rounding does not depend on the thread count. */
    private static final int REDUCTION_CHUNK = 1 << 16;

    // e^x = 2ⁿ·e^r with n = round(x·log₂e) and r = x − n·ln2, |r| ≤ ln2/2.
    private static final float LOG2_E = 1.44269504088896341f;
    /** ln2 split Cody–Waite style: LN2_HI has 16 significant bits, so n·LN2_HI is exact for |n| < 2⁸. */
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.428606765330187045e-6f;
    /**
     * 1.5·2²³: adding it to a float of magnitude below 2²² rounds it to the nearest integer n and
     * leaves n in the low bits of the sum's mantissa.
     */
    private static final float ROUND_TO_INTEGER = 0x1.8p23f;
    /** Largest x with e^x finite in float; above it e^x is +∞. */
    private static final float EXP_OVERFLOW = 88.72283f;
    /** Smallest x with e^x a normal float, −126·ln2 rounded up; below it e^x is flushed to 0. */
    private static final float EXP_UNDERFLOW = -87.33654f;
    /** Minimax coefficients of (e^r − 1 − r)/r² on |r| ≤ ln2/2, from SLEEF's expf (1 ulp). */
    private static final float EXP_C5 = 1.98527617612853646278381e-4f;
    private static final float EXP_C4 = 1.39304355252534151077271e-3f;
    private static final float EXP_C3 = 8.33336077630519866943359e-3f;
    private static final float EXP_C2 = 4.16664853692054748535156e-2f;
    private static final float EXP_C1 = 1.66666671633720397949219e-1f;
    private static final float EXP_C0 = 0.5f;

    /**
     * Lane l of {@code v.rearrange(ROTATE_k)} is lane l + k of v, for the lane sums' pairwise order;
     * up to 64 lanes, the widest float vector the Vector API has (2048-bit SVE).
     */
    private static final VectorShuffle<Float> ROTATE_32 = VectorShuffle.iota(SPECIES, 32, 1, true);
    private static final VectorShuffle<Float> ROTATE_16 = VectorShuffle.iota(SPECIES, 16, 1, true);
    private static final VectorShuffle<Float> ROTATE_8 = VectorShuffle.iota(SPECIES, 8, 1, true);
    private static final VectorShuffle<Float> ROTATE_4 = VectorShuffle.iota(SPECIES, 4, 1, true);
    private static final VectorShuffle<Float> ROTATE_2 = VectorShuffle.iota(SPECIES, 2, 1, true);
    private static final VectorShuffle<Float> ROTATE_1 = VectorShuffle.iota(SPECIES, 1, 1, true);

    private VectorMath() {}

    /** out = a + b. a [n], b [n], out [n]; out may be a or b. */
    public static void add(float[] a, int aOff, float[] b, int bOff, float[] out, int outOff, int n) {
        Bounds.check(a, aOff, n, "a");
        Bounds.check(b, bOff, n, "b");
        Bounds.check(out, outOff, n, "out");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES,
                (from, to) -> addRange(a, aOff + from, b, bOff + from, out, outOff + from, to - from));
    }

    /** y += x. x [n], y [n]. */
    public static void addInPlace(float[] x, int xOff, float[] y, int yOff, int n) {
        add(x, xOff, y, yOff, y, yOff, n);
    }

    /** out = a ⊙ b (elementwise product). a [n], b [n], out [n]; out may be a or b. */
    public static void mul(float[] a, int aOff, float[] b, int bOff, float[] out, int outOff, int n) {
        Bounds.check(a, aOff, n, "a");
        Bounds.check(b, bOff, n, "b");
        Bounds.check(out, outOff, n, "out");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES,
                (from, to) -> mulRange(a, aOff + from, b, bOff + from, out, outOff + from, to - from));
    }

    /** x *= alpha, in place. x [n]. */
    public static void scale(float alpha, float[] x, int xOff, int n) {
        Bounds.check(x, xOff, n, "x");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES, (from, to) -> scaleRange(alpha, x, xOff + from, to - from));
    }

    /** y += alpha·x. x [n], y [n]. */
    public static void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        Bounds.check(x, xOff, n, "x");
        Bounds.check(y, yOff, n, "y");
        Parallel.forRange(n, PARALLEL_MIN_ELEMENTS, LANES,
                (from, to) -> axpyRange(alpha, x, xOff + from, y, yOff + from, to - from));
    }

    /** x[i] = value for all i. x [n]. */
    public static void fill(float[] x, int xOff, int n, float value) {
        Bounds.check(x, xOff, n, "x");
        Arrays.fill(x, xOff, xOff + n, value);
    }

    /** x[i] = 0 for all i. x [n]. */
    public static void zero(float[] x, int xOff, int n) {
        fill(x, xOff, n, 0f);
    }

    /** Σ x. x [n]. */
    public static double sum(float[] x, int xOff, int n) {
        Bounds.check(x, xOff, n, "x");
        return reduce(Reduction.SUM, x, xOff, x, xOff, n);
    }

    /** Σ a ⊙ b. a [n], b [n]. */
    public static double dot(float[] a, int aOff, float[] b, int bOff, int n) {
        Bounds.check(a, aOff, n, "a");
        Bounds.check(b, bOff, n, "b");
        return reduce(Reduction.DOT, a, aOff, b, bOff, n);
    }

    /** Σ x², e.g. one tensor's share of the squared gradient norm for clipping. x [n]. */
    public static double sumOfSquares(float[] x, int xOff, int n) {
        Bounds.check(x, xOff, n, "x");
        return reduce(Reduction.SUM_OF_SQUARES, x, xOff, x, xOff, n);
    }

    /** max x, or −∞ for n = 0; single-threaded, as the kernels use it on one row. x [n]. */
    public static float max(float[] x, int xOff, int n) {
        Bounds.check(x, xOff, n, "x");
        return maxRange(x, xOff, n);
    }

    /**
     * e^x per lane, within 1 ulp of {@link Math#exp} where that is a normal float: +∞ above 88.72283,
     * and 0 below −87.33654, where e^x < 2⁻¹²⁶ would be subnormal (flushed, as no kernel needs an
     * exponential that small), −∞ included; NaN stays NaN. Built only from operations that the
     * Vector API's Java fallback and C2 compute identically, unlike {@code lanewise(EXP)}, so the
     * result does not depend on whether the caller has been compiled.
     */
    static FloatVector exp(FloatVector x) {
        FloatVector shifted = x.fma(LOG2_E, ROUND_TO_INTEGER);
        FloatVector n = shifted.sub(ROUND_TO_INTEGER);
        FloatVector r = n.fma(FloatVector.broadcast(SPECIES, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(SPECIES, -LN2_LO), r);
        FloatVector p = r.fma(EXP_C5, EXP_C4);
        p = p.fma(r, FloatVector.broadcast(SPECIES, EXP_C3));
        p = p.fma(r, FloatVector.broadcast(SPECIES, EXP_C2));
        p = p.fma(r, FloatVector.broadcast(SPECIES, EXP_C1));
        p = p.fma(r, FloatVector.broadcast(SPECIES, EXP_C0));
        FloatVector expR = r.mul(r).fma(p, r).add(1f);
        // ·2ⁿ by adding n to the exponent field of e^r ∈ [0.70, 1.42]: shifted holds n in its low bits,
        // and the shift by 23 drops the rest. Outside [EXP_UNDERFLOW, EXP_OVERFLOW] the field would
        // wrap, so those lanes, and NaN whose payload would move the field, are replaced.
        IntVector exponent = shifted.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23);
        return expR.reinterpretAsInts().add(exponent).reinterpretAsFloats()
                .blend(0f, x.compare(VectorOperators.LT, EXP_UNDERFLOW))
                .blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, EXP_OVERFLOW))
                .blend(x, x.test(VectorOperators.IS_NAN));
    }

    /**
     * Σ of v's lanes in a fixed pairwise order: lane l + width is added to lane l for width = LANES/2,
     * …, 2, 1, by rotating the vector. {@code reduceLanes(ADD)} leaves the order to the implementation,
     * and the Vector API's Java fallback and C2's intrinsic differ; rotations and adds are exact in both.
     */
    static float sumLanes(FloatVector v) {
        if (LANES > 32) {
            v = v.add(v.rearrange(ROTATE_32));
        }
        if (LANES > 16) {
            v = v.add(v.rearrange(ROTATE_16));
        }
        if (LANES > 8) {
            v = v.add(v.rearrange(ROTATE_8));
        }
        if (LANES > 4) {
            v = v.add(v.rearrange(ROTATE_4));
        }
        if (LANES > 2) {
            v = v.add(v.rearrange(ROTATE_2));
        }
        return v.add(v.rearrange(ROTATE_1)).lane(0);
    }

    /** max of v's lanes, with {@link Math#max}'s handling of NaN and −0, in the order of {@link #sumLanes}. */
    static float maxLanes(FloatVector v) {
        if (LANES > 32) {
            v = v.max(v.rearrange(ROTATE_32));
        }
        if (LANES > 16) {
            v = v.max(v.rearrange(ROTATE_16));
        }
        if (LANES > 8) {
            v = v.max(v.rearrange(ROTATE_8));
        }
        if (LANES > 4) {
            v = v.max(v.rearrange(ROTATE_4));
        }
        if (LANES > 2) {
            v = v.max(v.rearrange(ROTATE_2));
        }
        return v.max(v.rearrange(ROTATE_1)).lane(0);
    }

    /** Splits [0, rows) over the cores so that each task gets at least {@link #PARALLEL_MIN_ELEMENTS} elements. */
    static void forRows(int rows, int cols, Parallel.RangeBody body) {
        Parallel.forRange(rows, rowGrain(cols), body);
    }

    /** Whether {@link #forRows} would hand the rows to more than one task. */
    static boolean rowsSplit(int rows, int cols) {
        return Parallel.threads() > 1 && rows / rowGrain(cols) >= 2;
    }

    private static int rowGrain(int cols) {
        return Math.max(1, PARALLEL_MIN_ELEMENTS / Math.max(1, cols));
    }

    // Single-threaded bodies; the row kernels call these from inside their own split over the cores.

    private static void addRange(float[] a, int aOff, float[] b, int bOff, float[] out, int outOff, int n) {
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector.fromArray(SPECIES, a, aOff + i).add(FloatVector.fromArray(SPECIES, b, bOff + i))
                    .intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = a[aOff + i] + b[bOff + i];
        }
    }

    private static void mulRange(float[] a, int aOff, float[] b, int bOff, float[] out, int outOff, int n) {
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector.fromArray(SPECIES, a, aOff + i).mul(FloatVector.fromArray(SPECIES, b, bOff + i))
                    .intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
            out[outOff + i] = a[aOff + i] * b[bOff + i];
        }
    }

    static void scaleRange(float alpha, float[] x, int xOff, int n) {
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector.fromArray(SPECIES, x, xOff + i).mul(alpha).intoArray(x, xOff + i);
        }
        for (; i < n; i++) {
            x[xOff + i] *= alpha;
        }
    }

    private static void axpyRange(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        FloatVector alphas = FloatVector.broadcast(SPECIES, alpha);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector.fromArray(SPECIES, x, xOff + i).fma(alphas, FloatVector.fromArray(SPECIES, y, yOff + i))
                    .intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] = Math.fma(alpha, x[xOff + i], y[yOff + i]);
        }
    }

    static float maxRange(float[] x, int xOff, int n) {
        FloatVector acc = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            acc = acc.max(FloatVector.fromArray(SPECIES, x, xOff + i));
        }
        float max = maxLanes(acc);
        for (; i < n; i++) {
            max = Math.max(max, x[xOff + i]);
        }
        return max;
    }

    static double sumRange(float[] x, int xOff, int n) {
        return reduceRange(Reduction.SUM, x, xOff, x, xOff, n);
    }

    static double dotRange(float[] a, int aOff, float[] b, int bOff, int n) {
        return reduceRange(Reduction.DOT, a, aOff, b, bOff, n);
    }

    static double sumOfSquaresRange(float[] x, int xOff, int n) {
        return reduceRange(Reduction.SUM_OF_SQUARES, x, xOff, x, xOff, n);
    }

    /** Σ (x − center)², the variance numerator of a row; two passes beat Σx² − n·mean² on rows with a large mean. */
    static double sumOfSquaredDeviationsRange(float[] x, int xOff, int n, float center) {
        FloatVector centers = FloatVector.broadcast(SPECIES, center);
        double total = 0;
        for (int block = 0; block < n; block += REDUCTION_BLOCK) {
            int end = Math.min(n, block + REDUCTION_BLOCK);
            FloatVector acc0 = FloatVector.zero(SPECIES);
            FloatVector acc1 = FloatVector.zero(SPECIES);
            int i = block;
            for (int bound = end - 2 * LANES; i <= bound; i += 2 * LANES) {
                FloatVector d0 = FloatVector.fromArray(SPECIES, x, xOff + i).sub(centers);
                FloatVector d1 = FloatVector.fromArray(SPECIES, x, xOff + i + LANES).sub(centers);
                acc0 = d0.fma(d0, acc0);
                acc1 = d1.fma(d1, acc1);
            }
            float blockSum = sumLanes(acc0.add(acc1));
            for (; i < end; i++) {
                float d = x[xOff + i] - center;
                blockSum = Math.fma(d, d, blockSum);
            }
            total += blockSum;
        }
        return total;
    }

    private static double reduce(Reduction reduction, float[] a, int aOff, float[] b, int bOff, int n) {
        if (n < 2 * PARALLEL_MIN_ELEMENTS || Parallel.threads() < 2) {
            return reduceRange(reduction, a, aOff, b, bOff, n);
        }
        int chunks = (n + REDUCTION_CHUNK - 1) / REDUCTION_CHUNK;
        double[] partials = new double[chunks];
        Parallel.forRange(chunks, PARALLEL_MIN_ELEMENTS / REDUCTION_CHUNK, (from, to) -> {
            for (int c = from; c < to; c++) {
                int start = c * REDUCTION_CHUNK;
                partials[c] = reduceChunk(reduction, a, aOff + start, b, bOff + start, Math.min(REDUCTION_CHUNK, n - start));
            }
        });
        double total = 0;
        for (double partial : partials) {
            total += partial;
        }
        return total;
    }

    /** The chunks and order of additions of the parallel path, so the thread count does not change the sum. */
    private static double reduceRange(Reduction reduction, float[] a, int aOff, float[] b, int bOff, int n) {
        double total = 0;
        for (int start = 0; start < n; start += REDUCTION_CHUNK) {
            total += reduceChunk(reduction, a, aOff + start, b, bOff + start, Math.min(REDUCTION_CHUNK, n - start));
        }
        return total;
    }

    private static double reduceChunk(Reduction reduction, float[] a, int aOff, float[] b, int bOff, int n) {
        double total = 0;
        for (int start = 0; start < n; start += REDUCTION_BLOCK) {
            total += reduction.block(a, aOff + start, b, bOff + start, Math.min(REDUCTION_BLOCK, n - start));
        }
        return total;
    }

    /** One block of a reduction, summed in four float vector accumulators to hide the add latency. */
    private enum Reduction {
        SUM {
            @Override
            float block(float[] a, int aOff, float[] b, int bOff, int n) {
                FloatVector s0 = FloatVector.zero(SPECIES);
                FloatVector s1 = FloatVector.zero(SPECIES);
                FloatVector s2 = FloatVector.zero(SPECIES);
                FloatVector s3 = FloatVector.zero(SPECIES);
                int i = 0;
                for (int bound = n - 4 * LANES; i <= bound; i += 4 * LANES) {
                    s0 = s0.add(FloatVector.fromArray(SPECIES, a, aOff + i));
                    s1 = s1.add(FloatVector.fromArray(SPECIES, a, aOff + i + LANES));
                    s2 = s2.add(FloatVector.fromArray(SPECIES, a, aOff + i + 2 * LANES));
                    s3 = s3.add(FloatVector.fromArray(SPECIES, a, aOff + i + 3 * LANES));
                }
                for (; i < n; i += LANES) {
                    s0 = s0.add(FloatVector.fromArray(SPECIES, a, aOff + i, SPECIES.indexInRange(i, n)));
                }
                return sumLanes(s0.add(s1).add(s2.add(s3)));
            }
        },
        DOT {
            @Override
            float block(float[] a, int aOff, float[] b, int bOff, int n) {
                FloatVector s0 = FloatVector.zero(SPECIES);
                FloatVector s1 = FloatVector.zero(SPECIES);
                FloatVector s2 = FloatVector.zero(SPECIES);
                FloatVector s3 = FloatVector.zero(SPECIES);
                int i = 0;
                for (int bound = n - 4 * LANES; i <= bound; i += 4 * LANES) {
                    s0 = FloatVector.fromArray(SPECIES, a, aOff + i).fma(FloatVector.fromArray(SPECIES, b, bOff + i), s0);
                    s1 = FloatVector.fromArray(SPECIES, a, aOff + i + LANES)
                            .fma(FloatVector.fromArray(SPECIES, b, bOff + i + LANES), s1);
                    s2 = FloatVector.fromArray(SPECIES, a, aOff + i + 2 * LANES)
                            .fma(FloatVector.fromArray(SPECIES, b, bOff + i + 2 * LANES), s2);
                    s3 = FloatVector.fromArray(SPECIES, a, aOff + i + 3 * LANES)
                            .fma(FloatVector.fromArray(SPECIES, b, bOff + i + 3 * LANES), s3);
                }
                for (; i < n; i += LANES) {
                    var inRange = SPECIES.indexInRange(i, n);
                    s0 = FloatVector.fromArray(SPECIES, a, aOff + i, inRange)
                            .fma(FloatVector.fromArray(SPECIES, b, bOff + i, inRange), s0);
                }
                return sumLanes(s0.add(s1).add(s2.add(s3)));
            }
        },
        SUM_OF_SQUARES {
            @Override
            float block(float[] a, int aOff, float[] b, int bOff, int n) {
                FloatVector s0 = FloatVector.zero(SPECIES);
                FloatVector s1 = FloatVector.zero(SPECIES);
                FloatVector s2 = FloatVector.zero(SPECIES);
                FloatVector s3 = FloatVector.zero(SPECIES);
                int i = 0;
                for (int bound = n - 4 * LANES; i <= bound; i += 4 * LANES) {
                    FloatVector v0 = FloatVector.fromArray(SPECIES, a, aOff + i);
                    FloatVector v1 = FloatVector.fromArray(SPECIES, a, aOff + i + LANES);
                    FloatVector v2 = FloatVector.fromArray(SPECIES, a, aOff + i + 2 * LANES);
                    FloatVector v3 = FloatVector.fromArray(SPECIES, a, aOff + i + 3 * LANES);
                    s0 = v0.fma(v0, s0);
                    s1 = v1.fma(v1, s1);
                    s2 = v2.fma(v2, s2);
                    s3 = v3.fma(v3, s3);
                }
                for (; i < n; i += LANES) {
                    FloatVector v = FloatVector.fromArray(SPECIES, a, aOff + i, SPECIES.indexInRange(i, n));
                    s0 = v.fma(v, s0);
                }
                return sumLanes(s0.add(s1).add(s2.add(s3)));
            }
        };

        /** Σ over a block of at most {@code REDUCTION_BLOCK} elements; masked-off tail lanes load as 0 and add nothing. */
        abstract float block(float[] a, int aOff, float[] b, int bOff, int n);
    }
}
