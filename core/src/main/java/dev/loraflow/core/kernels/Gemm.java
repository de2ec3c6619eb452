package dev.loraflow.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Single-precision matrix multiply {@code C = alpha·op(A)·op(B) + beta·C} on row-major arrays, in the
 * shape of Goto/BLIS: op(B) is packed into panels {@value #NR_VECTORS} vectors wide, op(A) into
 * panels {@link #MR} rows tall, and a register-blocked micro-kernel multiplies one panel pair with
 * fused multiply-adds. The three layouts of a linear layer are thin wrappers:
 * {@link #matmulXWt}, {@link #matmulDyW} and {@link #matmulDyTX}.
 */
public final class Gemm {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final int NR_VECTORS = 2;
    /** Columns of C one micro-kernel call produces. */
    static final int NR = NR_VECTORS * LANES;
    /** Rows of C one micro-kernel call produces: 8 rows × 2 vectors keeps 16 accumulators in registers. */
    static final int MR = 8;
    /** Depth of one packed block: a B micro-panel of KC×NR floats stays in L1. */
    private static final int KC = 256;
    /** Rows of A packed at once: MC×KC floats stay in L2. */
    private static final int MC = 128;
    /** Columns of B packed at once: KC×NC floats stay in the outer caches. */
    private static final int NC = 1024;
    /** Below this many multiply-adds a second thread costs more than it saves. */
    private static final long PARALLEL_MIN_FLOPS = 1L << 20;
    /** A C narrower than this is computed transposed, so the wide dimension fills the vector lanes. */
    private static final int THIN = NR / 2;

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    private Gemm() {}

    /** Packing space of one thread, grown on demand and then reused: a hot loop allocates nothing. */
    private static final class Buffers {
        float[] packedA = new float[MC * KC];
        float[] tile = new float[MR * NR];
        float[] packedB = new float[0];
        float[] transposedC = new float[0];

        float[] packedB(int size) {
            if (packedB.length < size) {
                packedB = new float[size];
            }
            return packedB;
        }

        float[] transposedC(int size) {
            if (transposedC.length < size) {
                transposedC = new float[size];
            }
            return transposedC;
        }
    }

    /** Y = X·Wᵀ (+ Y when {@code accumulate}), the forward of a linear layer. x [m, k], w [n, k], y [m, n]. */
    public static void matmulXWt(float[] x, float[] w, float[] y, int m, int k, int n, boolean accumulate) {
        sgemm(false, true, m, n, k, 1f, x, 0, k, w, 0, k, accumulate ? 1f : 0f, y, 0, n);
    }

    /** dX = dY·W (+ dX when {@code accumulate}), the input gradient. dy [m, n], w [n, k], dx [m, k]. */
    public static void matmulDyW(float[] dy, float[] w, float[] dx, int m, int n, int k, boolean accumulate) {
        sgemm(false, false, m, k, n, 1f, dy, 0, n, w, 0, k, accumulate ? 1f : 0f, dx, 0, k);
    }

    /** dW = dYᵀ·X (+ dW when {@code accumulate}), the weight gradient. dy [m, n], x [m, k], dw [n, k]. */
    public static void matmulDyTX(float[] dy, float[] x, float[] dw, int m, int n, int k, boolean accumulate) {
        sgemm(true, false, n, k, m, 1f, dy, 0, n, x, 0, k, accumulate ? 1f : 0f, dw, 0, k);
    }

    /**
     * C = alpha·op(A)·op(B) + beta·C, all row-major. op(A) is [m, k]: A is stored [m, k] (lda ≥ k), or
     * [k, m] when {@code transA} (lda ≥ m). op(B) is [k, n]: B is stored [k, n] (ldb ≥ n), or [n, k] when
     * {@code transB} (ldb ≥ k). C is [m, n] (ldc ≥ n). With beta = 0, C is not read (NaN in it is ignored).
     */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc) {
        checkArguments(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc);
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0 || alpha == 0f) {
            scaleC(m, n, beta, c, cOff, ldc);
            return;
        }
        if (n < THIN && m >= NR) {
            transposedSgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            return;
        }
        boolean parallel = (long) m * n * k >= PARALLEL_MIN_FLOPS && Parallel.threads() > 1;
        blockedSgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, parallel);
    }

    /** Computes Cᵀ = op(B)ᵀ·op(A)ᵀ into scratch space, so a thin C still fills whole vectors. */
    private static void transposedSgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                        float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                        float beta, float[] c, int cOff, int ldc) {
        float[] ct = BUFFERS.get().transposedC(n * m);
        if (beta != 0f) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    ct[j * m + i] = c[cOff + i * ldc + j];
                }
            }
        }
        sgemm(!transB, !transA, n, m, k, alpha, b, bOff, ldb, a, aOff, lda, beta, ct, 0, m);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                c[cOff + i * ldc + j] = ct[j * m + i];
            }
        }
    }

    /**
     * The Goto loop nest. Per (jc, pc) block, B is packed once into space shared by all threads; then
     * each thread packs its own rows of A and runs the micro-kernel over its share of C. The threads
     * split rows when there are enough of them, else column panels.
     */
    private static void blockedSgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                     float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                     float beta, float[] c, int cOff, int ldc, boolean parallel) {
        boolean splitRows = m >= Parallel.threads() * MR * 2;
        for (int jc = 0; jc < n; jc += NC) {
            int nc = Math.min(NC, n - jc);
            int panels = (nc + NR - 1) / NR;
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                int block = jc;
                int depth = pc;
                float blockBeta = pc == 0 ? beta : 1f;
                float[] packedB = BUFFERS.get().packedB(panels * NR * KC);
                Parallel.RangeBody packPanels = (from, to) -> packB(transB, b, bOff, ldb, depth, kc,
                        block + from * NR, Math.min(nc, to * NR) - from * NR, packedB, from * NR * kc);
                if (parallel) {
                    Parallel.forRange(panels, 1, packPanels);
                } else {
                    packPanels.run(0, panels);
                }
                if (parallel && splitRows) {
                    Parallel.forRange(m, MR, MR, (from, to) -> macroKernel(transA, a, aOff, lda, from, to, depth, kc,
                            packedB, 0, nc, alpha, blockBeta, c, cOff + block, ldc));
                } else if (parallel) {
                    Parallel.forRange(panels, 1, (from, to) -> macroKernel(transA, a, aOff, lda, 0, m, depth, kc,
                            packedB, from * NR, Math.min(nc, to * NR), alpha, blockBeta, c, cOff + block, ldc));
                } else {
                    macroKernel(transA, a, aOff, lda, 0, m, depth, kc, packedB, 0, nc, alpha, blockBeta, c, cOff + block, ldc);
                }
            }
        }
    }

    /**
     * Multiplies rows [rowFrom, rowTo) of op(A) at depth [pc, pc+kc) with the packed columns
     * [colFrom, colTo) of the current B block, into C (cBlock: C's index of the block's first column).
     */
    private static void macroKernel(boolean transA, float[] a, int aOff, int lda, int rowFrom, int rowTo, int pc, int kc,
                                    float[] packedB, int colFrom, int colTo, float alpha, float beta,
                                    float[] c, int cBlock, int ldc) {
        Buffers buffers = BUFFERS.get();
        float[] packedA = buffers.packedA;
        float[] tile = buffers.tile;
        for (int ic = rowFrom; ic < rowTo; ic += MC) {
            int mc = Math.min(MC, rowTo - ic);
            packA(transA, a, aOff, lda, ic, mc, pc, kc, packedA);
            for (int jr = colFrom; jr < colTo; jr += NR) {
                int nr = Math.min(NR, colTo - jr);
                int bPanel = jr * kc;
                for (int ir = 0; ir < mc; ir += MR) {
                    int mr = Math.min(MR, mc - ir);
                    microKernel(kc, packedA, ir * kc, packedB, bPanel, tile);
                    storeTile(tile, alpha, beta, c, cBlock + (ic + ir) * ldc + jr, ldc, mr, nr);
                }
            }
        }
    }

    /**
     * Packs rows [ic, ic+mc) × depth [pc, pc+kc) of op(A) into panels of MR rows: within a panel the MR
     * values of one depth index are adjacent. Rows past mc are zero so the micro-kernel needs no edge case.
     */
    private static void packA(boolean transA, float[] a, int aOff, int lda, int ic, int mc, int pc, int kc, float[] packed) {
        for (int ir = 0; ir < mc; ir += MR) {
            int panel = ir * kc;
            int rows = Math.min(MR, mc - ir);
            if (transA) {
                for (int p = 0; p < kc; p++) {
                    int src = aOff + (pc + p) * lda + ic + ir;
                    int dst = panel + p * MR;
                    for (int i = 0; i < rows; i++) {
                        packed[dst + i] = a[src + i];
                    }
                    for (int i = rows; i < MR; i++) {
                        packed[dst + i] = 0f;
                    }
                }
            } else {
                for (int i = 0; i < rows; i++) {
                    int src = aOff + (ic + ir + i) * lda + pc;
                    for (int p = 0; p < kc; p++) {
                        packed[panel + p * MR + i] = a[src + p];
                    }
                }
                for (int i = rows; i < MR; i++) {
                    for (int p = 0; p < kc; p++) {
                        packed[panel + p * MR + i] = 0f;
                    }
                }
            }
        }
    }

    /**
     * Packs depth [pc, pc+kc) × columns [jc, jc+nc) of op(B) from packedOff on, in panels of NR columns:
     * within a panel the NR values of one depth index are adjacent. Columns past nc are zero.
     */
    private static void packB(boolean transB, float[] b, int bOff, int ldb, int pc, int kc, int jc, int nc,
                              float[] packed, int packedOff) {
        for (int jr = 0; jr < nc; jr += NR) {
            int panel = packedOff + jr * kc;
            int cols = Math.min(NR, nc - jr);
            if (transB) {
                for (int j = 0; j < cols; j++) {
                    int src = bOff + (jc + jr + j) * ldb + pc;
                    for (int p = 0; p < kc; p++) {
                        packed[panel + p * NR + j] = b[src + p];
                    }
                }
                for (int j = cols; j < NR; j++) {
                    for (int p = 0; p < kc; p++) {
                        packed[panel + p * NR + j] = 0f;
                    }
                }
            } else if (cols == NR) {
                for (int p = 0; p < kc; p++) {
                    int src = bOff + (pc + p) * ldb + jc + jr;
                    int dst = panel + p * NR;
                    for (int v = 0; v < NR; v += LANES) {
                        FloatVector.fromArray(SPECIES, b, src + v).intoArray(packed, dst + v);
                    }
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    int src = bOff + (pc + p) * ldb + jc + jr;
                    int dst = panel + p * NR;
                    System.arraycopy(b, src, packed, dst, cols);
                    java.util.Arrays.fill(packed, dst + cols, dst + NR, 0f);
                }
            }
        }
    }

    /**
     * tile [MR, NR] = Apanel·Bpanel, accumulating in 16 registers. packedA holds kc groups of MR values
     * from aIndex, packedB kc groups of NR values from bIndex.
     */
    private static void microKernel(int kc, float[] packedA, int aIndex, float[] packedB, int bIndex, float[] tile) {
        FloatVector c00 = FloatVector.zero(SPECIES), c01 = FloatVector.zero(SPECIES);
        FloatVector c10 = FloatVector.zero(SPECIES), c11 = FloatVector.zero(SPECIES);
        FloatVector c20 = FloatVector.zero(SPECIES), c21 = FloatVector.zero(SPECIES);
        FloatVector c30 = FloatVector.zero(SPECIES), c31 = FloatVector.zero(SPECIES);
        FloatVector c40 = FloatVector.zero(SPECIES), c41 = FloatVector.zero(SPECIES);
        FloatVector c50 = FloatVector.zero(SPECIES), c51 = FloatVector.zero(SPECIES);
        FloatVector c60 = FloatVector.zero(SPECIES), c61 = FloatVector.zero(SPECIES);
        FloatVector c70 = FloatVector.zero(SPECIES), c71 = FloatVector.zero(SPECIES);
        int ai = aIndex;
        int bi = bIndex;
        for (int p = 0; p < kc; p++, ai += MR, bi += NR) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, packedB, bi);
            FloatVector b1 = FloatVector.fromArray(SPECIES, packedB, bi + LANES);
            FloatVector a0 = FloatVector.broadcast(SPECIES, packedA[ai]);
            c00 = a0.fma(b0, c00);
            c01 = a0.fma(b1, c01);
            FloatVector a1 = FloatVector.broadcast(SPECIES, packedA[ai + 1]);
            c10 = a1.fma(b0, c10);
            c11 = a1.fma(b1, c11);
            FloatVector a2 = FloatVector.broadcast(SPECIES, packedA[ai + 2]);
            c20 = a2.fma(b0, c20);
            c21 = a2.fma(b1, c21);
            FloatVector a3 = FloatVector.broadcast(SPECIES, packedA[ai + 3]);
            c30 = a3.fma(b0, c30);
            c31 = a3.fma(b1, c31);
            FloatVector a4 = FloatVector.broadcast(SPECIES, packedA[ai + 4]);
            c40 = a4.fma(b0, c40);
            c41 = a4.fma(b1, c41);
            FloatVector a5 = FloatVector.broadcast(SPECIES, packedA[ai + 5]);
            c50 = a5.fma(b0, c50);
            c51 = a5.fma(b1, c51);
            FloatVector a6 = FloatVector.broadcast(SPECIES, packedA[ai + 6]);
            c60 = a6.fma(b0, c60);
            c61 = a6.fma(b1, c61);
            FloatVector a7 = FloatVector.broadcast(SPECIES, packedA[ai + 7]);
            c70 = a7.fma(b0, c70);
            c71 = a7.fma(b1, c71);
        }
        c00.intoArray(tile, 0);
        c01.intoArray(tile, LANES);
        c10.intoArray(tile, NR);
        c11.intoArray(tile, NR + LANES);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + LANES);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + LANES);
        c40.intoArray(tile, 4 * NR);
        c41.intoArray(tile, 4 * NR + LANES);
        c50.intoArray(tile, 5 * NR);
        c51.intoArray(tile, 5 * NR + LANES);
        c60.intoArray(tile, 6 * NR);
        c61.intoArray(tile, 6 * NR + LANES);
        c70.intoArray(tile, 7 * NR);
        c71.intoArray(tile, 7 * NR + LANES);
    }

    /**
     * C[0:mr, 0:nr] = alpha·tile + beta·C. The accumulators pass through {@code tile} rather than as
     * arguments: a vector handed to a method that is not inlined would be boxed on every call.
     */
    private static void storeTile(float[] tile, float alpha, float beta, float[] c, int cIndex, int ldc, int mr, int nr) {
        for (int i = 0; i < mr; i++) {
            int row = cIndex + i * ldc;
            for (int v = 0; v < nr; v += LANES) {
                VectorMask<Float> mask = SPECIES.indexInRange(v, nr);
                FloatVector result = FloatVector.fromArray(SPECIES, tile, i * NR + v).mul(alpha);
                if (beta != 0f) {
                    result = FloatVector.fromArray(SPECIES, c, row + v, mask).mul(beta).add(result);
                }
                result.intoArray(c, row + v, mask);
            }
        }
    }

    private static void scaleC(int m, int n, float beta, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            int row = cOff + i * ldc;
            for (int j = 0; j < n; j++) {
                c[row + j] = beta == 0f ? 0f : beta * c[row + j];
            }
        }
    }

    private static int roundUp(int value, int multiple) {
        return (value + multiple - 1) / multiple * multiple;
    }

    private static void checkArguments(boolean transA, boolean transB, int m, int n, int k,
                                       float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                       float[] c, int cOff, int ldc) {
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("negative size m=" + m + " n=" + n + " k=" + k);
        }
        if (m == 0 || n == 0) {
            return;
        }
        checkMatrix("C", c, cOff, m, n, ldc);
        if (k > 0) {
            checkMatrix("A", a, aOff, transA ? k : m, transA ? m : k, lda);
            checkMatrix("B", b, bOff, transB ? n : k, transB ? k : n, ldb);
        }
    }

    private static void checkMatrix(String name, float[] data, int offset, int rows, int cols, int ld) {
        if (ld < cols) {
            throw new IllegalArgumentException(name + ": leading dimension " + ld + " < " + cols + " columns");
        }
        long last = offset + (long) (rows - 1) * ld + cols;
        if (offset < 0 || last > data.length) {
            throw new IllegalArgumentException(name + ": " + rows + "×" + cols + " (ld " + ld + ") at offset "
                    + offset + " needs " + last + " elements, array has " + data.length);
        }
    }
}
