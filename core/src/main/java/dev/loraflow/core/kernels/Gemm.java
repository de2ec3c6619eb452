package dev.loraflow.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
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
    /** A vector of MR floats: one depth index of a packed A panel. */
    private static final VectorSpecies<Float> PANEL_ROW = VectorSpecies.of(float.class, VectorShape.forBitSize(MR * Float.SIZE));
    /** Depth of one packed block: a B micro-panel of KC×NR floats stays in L1. */
    private static final int KC = 256;
    /** Rows of A packed at once: MC×KC floats stay in L2. */
    private static final int MC = 128;
    /** Columns of B packed at once: KC×NC floats stay in the outer caches. */
    private static final int NC = 4096;
    /** Below this many multiply-adds a second thread costs more than it saves. */
    private static final long PARALLEL_MIN_FLOPS = 1L << 20;
    /**
     * A C at most this narrow (a LoRA rank, typically) is computed as dot products along k, or
     * transposed, so that the wide dimension fills the vector lanes.
     */
    private static final int THIN = 16;
    /** Up to this many rows of C, a row of op(A) at a time against op(B) read in place (see gemvSgemm). */
    private static final int GEMV_ROWS = 4;
    /** Columns per task in gemvSgemm: a few cache lines of every row of B. */
    private static final int GEMV_GRAIN = 256;
    /** Columns of C one row-dot kernel call produces, for two rows at once: 16 accumulators. */
    private static final int DOT_COLUMNS = 8;
    /**
     * Column panels in one chunk of the threaded path: about six keep a chunk's C block and B block in
     * L2 across the depth blocks and still leave several chunks per thread to even out finishing times.
     */
    private static final int CHUNK_PANELS = 6;
    /**
     * Floats of packed op(A) the threaded path holds at once (8 MiB): a taller op(A) goes through in
     * blocks of rows, each packing B again, so the buffer does not grow with the batch.
     */
    private static final int SHARED_A_FLOATS = 1 << 21;
    /**
     * Floats of a {@link FrozenMatrix} widened at once (16 MiB) on the paths that read op(B) as stored
     * rather than packed (a C of at most {@value #GEMV_ROWS} rows, or a thin one): a block of op(B)'s columns,
     * cut so that a huge weight is never widened whole. The packed paths widen straight into their panels.
     */
    private static final int FROZEN_BLOCK_FLOATS = 1 << 22;

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    private Gemm() {}

    /** Packing space of one thread, grown on demand and then reused: a hot loop allocates nothing. */
    private static final class Buffers {
        float[] packedA = new float[roundUp(MC, MR) * KC];
        float[] tile = new float[MR * NR];
        float[] packedB = new float[0];
        float[] sharedA = new float[0];
        float[] transposedC = new float[0];
        float[] transposedB = new float[0];
        float[] lowRankTile = new float[MR * NR];
        float[] packedU = new float[0];
        float[] packedV = new float[0];
        float[] dots = new float[2 * DOT_COLUMNS];
        float[] dotLanes = new float[2 * DOT_COLUMNS * LANES];
        float[] frozenBlock = new float[0];
        float[] frozenRows = new float[0];

        private static float[] atLeast(float[] buffer, int size) {
            return buffer.length >= size ? buffer : new float[size];
        }

        float[] packedU(int size) {
            return packedU = atLeast(packedU, size);
        }

        float[] packedV(int size) {
            return packedV = atLeast(packedV, size);
        }

        float[] transposedB(int size) {
            return transposedB = atLeast(transposedB, size);
        }

        float[] packedB(int size) {
            return packedB = atLeast(packedB, size);
        }

        float[] sharedA(int size) {
            return sharedA = atLeast(sharedA, size);
        }

        float[] transposedC(int size) {
            return transposedC = atLeast(transposedC, size);
        }

        float[] frozenBlock(int size) {
            return frozenBlock = atLeast(frozenBlock, size);
        }

        float[] frozenRows(int size) {
            return frozenRows = atLeast(frozenRows, size);
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
        sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, null);
    }

    /**
     * {@link #sgemm(boolean, boolean, int, int, int, float, float[], int, int, float[], int, int, float, float[], int, int)}
     * plus the {@link Epilogue}'s bias and low-rank terms (none when null), added as tiles are stored.
     */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc, Epilogue epilogue) {
        checkArguments(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc);
        if (epilogue != null) {
            checkEpilogue(epilogue, m, n);
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (packsPanels(transA, m, n, k, alpha)) {
            panelSgemm(transA, m, n, k, alpha, a, aOff, lda, new OperandB(transB, b, bOff, ldb, null),
                    beta, c, cOff, ldc, epilogue);
            return;
        }
        if (!transA && m <= GEMV_ROWS && n > THIN && k > 0 && alpha != 0f) {
            gemvSgemm(transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        } else if (k == 0 || alpha == 0f) {
            scaleC(m, n, beta, c, cOff, ldc);
        } else if (!transA) {
            rowDotSgemm(transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        } else {
            transposedSgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        }
        if (epilogue != null) {
            applyEpilogueSeparately(epilogue, m, n, c, cOff, ldc);
        }
    }

    /**
     * Whether C [m, n] (m, n > 0) goes through packed panels of op(A) and op(B): every shape except a C of at
     * most {@value #GEMV_ROWS} rows (op(B) read in place, row by row) and a thin one (dot products along k, or
     * the transposed problem), and the empty sums of k = 0 or alpha = 0.
     */
    private static boolean packsPanels(boolean transA, int m, int n, int k, float alpha) {
        boolean gemv = !transA && m <= GEMV_ROWS && n > THIN;
        boolean thin = n <= THIN && (!transA || m >= NR);
        return k > 0 && alpha != 0f && !gemv && !thin;
    }

    /** The Goto paths: C's columns in chunks across the threads, or its rows in slices, or one thread. */
    private static void panelSgemm(boolean transA, int m, int n, int k, float alpha, float[] a, int aOff, int lda,
                                   OperandB b, float beta, float[] c, int cOff, int ldc, Epilogue epilogue) {
        int threads = (long) m * n * k >= PARALLEL_MIN_FLOPS ? Parallel.threads() : 1;
        // Columns of C go to the threads in chunks taken on demand, with op(A) packed once for all of them.
        // A C much taller than wide is split into row slices instead, each thread packing all of B itself
        // (k·n values, fewer than the m·k of A).
        boolean chunkColumns = n >= threads * NR * 2 && (n >= m || m < threads * MR * 2);
        if (threads > 1 && chunkColumns) {
            int rowBlock = Math.max(MC, SHARED_A_FLOATS / k / MR * MR);
            for (int i0 = 0; i0 < m; i0 += rowBlock) {
                chunkedSgemm(threads, transA, Math.min(rowBlock, m - i0), n, k, alpha,
                        a, transA ? aOff + i0 : aOff + i0 * lda, lda, b, beta, c, cOff + i0 * ldc, ldc,
                        epilogue == null ? null : epilogue.slice(i0, 0));
            }
        } else if (threads > 1 && m >= threads * MR * 2) {
            Parallel.forRange(m, MR, MR, (from, to) -> blockedSgemm(transA, to - from, n, k, alpha,
                    a, transA ? aOff + from : aOff + from * lda, lda, b, beta, c, cOff + from * ldc, ldc,
                    epilogue == null ? null : epilogue.slice(from, 0)));
        } else {
            blockedSgemm(transA, m, n, k, alpha, a, aOff, lda, b, beta, c, cOff, ldc, epilogue);
        }
    }

    /**
     * C = alpha·op(A)·op(B) + beta·C (+ the epilogue's terms) with B a {@link FrozenMatrix}: [k, n], or
     * [n, k] when {@code transB}. Where {@link #sgemm(boolean, boolean, int, int, int, float, float[], int, int,
     * float[], int, int, float, float[], int, int, Epilogue) sgemm} packs op(B) into panels, B is widened straight
     * into them (one pass over the weight); on the paths that read op(B) as stored it is widened a block of
     * columns at a time (at most {@value #FROZEN_BLOCK_FLOATS} floats) and each block multiplied as a float32 B.
     * Either way every element of C gets exactly the sums sgemm gives on the widened matrix: blocks split only
     * the columns, and none is left as narrow as the thin path's.
     */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, FrozenMatrix b,
                             float beta, float[] c, int cOff, int ldc, Epilogue epilogue) {
        if (b.rows() != (transB ? n : k) || b.cols() != (transB ? k : n)) {
            throw new IllegalArgumentException("B: a " + b.rows() + "×" + b.cols() + " matrix is not op(B) [" + k + ", "
                    + n + "]" + (transB ? " transposed" : ""));
        }
        if (m == 0 || n == 0 || k == 0) {
            sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, new float[0], 0, transB ? Math.max(1, k) : n,
                    beta, c, cOff, ldc, epilogue);
            return;
        }
        if (packsPanels(transA, m, n, k, alpha)) {
            checkMatrix("C", c, cOff, m, n, ldc);
            checkMatrix("A", a, aOff, transA ? k : m, transA ? m : k, lda);
            if (epilogue != null) {
                checkEpilogue(epilogue, m, n);
            }
            panelSgemm(transA, m, n, k, alpha, a, aOff, lda, new OperandB(transB, null, 0, 0, b), beta, c, cOff, ldc, epilogue);
            return;
        }
        int width = Math.max(2 * NR, FROZEN_BLOCK_FLOATS / k / NR * NR);
        for (int j0 = 0; j0 < n; ) {
            int columns = Math.min(width, n - j0);
            if (n - j0 - columns <= THIN) {
                columns = n - j0;
            }
            float[] block = BUFFERS.get().frozenBlock(columns * k);
            widenColumns(b, transB, j0, columns, k, block);
            sgemm(transA, transB, m, columns, k, alpha, a, aOff, lda, block, 0, transB ? k : columns,
                    beta, c, cOff + j0, ldc, epilogue == null ? null : epilogue.slice(0, j0));
            j0 += columns;
        }
    }

    /** op(B)'s columns [j0, j0+columns) as a float32 B of the same layout: [columns, k] or [k, columns]. */
    private static void widenColumns(FrozenMatrix b, boolean transB, int j0, int columns, int k, float[] block) {
        Parallel.RangeBody rows = transB
                ? (from, to) -> {
                    for (int j = from; j < to; j++) {
                        b.widen(j0 + j, 0, k, block, j * k);
                    }
                }
                : (from, to) -> {
                    for (int p = from; p < to; p++) {
                        b.widen(p, j0, columns, block, p * columns);
                    }
                };
        int count = transB ? columns : k;
        if ((long) columns * k >= PARALLEL_MIN_FLOPS / 16) {
            Parallel.forRange(count, 16, rows);
        } else {
            rows.run(0, count);
        }
    }

    /** The epilogue's terms as passes of their own, for the paths that do not store tiles. */
    private static void applyEpilogueSeparately(Epilogue epilogue, int m, int n, float[] c, int cOff, int ldc) {
        if (epilogue.bias() != null) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    c[cOff + i * ldc + j] += epilogue.bias()[epilogue.biasOff() + j];
                }
            }
        }
        if (epilogue.hasLowRank() && epilogue.dropoutMask() == null) {
            sgemm(false, epilogue.transV(), m, n, epilogue.rank(), epilogue.scale(), epilogue.u(), epilogue.uOff(),
                    epilogue.ldu(), epilogue.v(), epilogue.vOff(), epilogue.ldv(), 1f, c, cOff, ldc);
        } else if (epilogue.hasLowRank()) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    long bit = epilogue.maskOffset() + (long) i * epilogue.maskStride() + j;
                    if ((epilogue.dropoutMask()[(int) (bit >>> 6)] >>> (bit & 63) & 1L) == 0) {
                        continue;
                    }
                    float sum = 0f;
                    for (int r = 0; r < epilogue.rank(); r++) {
                        int vIndex = epilogue.vOff() + (epilogue.transV() ? j * epilogue.ldv() + r : r * epilogue.ldv() + j);
                        sum += epilogue.u()[epilogue.uOff() + i * epilogue.ldu() + r] * epilogue.v()[vIndex];
                    }
                    c[cOff + i * ldc + j] += epilogue.scale() * sum;
                }
            }
        }
    }

    /**
     * C [m, n] for n ≤ {@link #THIN}: each element a dot product along k of a row of A and a row of
     * op(B)ᵀ, vectorised along k. op(B)ᵀ is copied (n·k values, small) into rows padded with zeros to a
     * multiple of {@link #DOT_COLUMNS}, so the kernel always runs 2 rows × 8 columns.
     */
    private static void rowDotSgemm(boolean transB, int m, int n, int k, float alpha,
                                    float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                    float beta, float[] c, int cOff, int ldc) {
        int groups = (n + DOT_COLUMNS - 1) / DOT_COLUMNS;
        float[] bt = BUFFERS.get().transposedB(groups * DOT_COLUMNS * k);
        for (int j = 0; j < groups * DOT_COLUMNS; j++) {
            for (int p = 0; p < k; p++) {
                bt[j * k + p] = j >= n ? 0f : transB ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
            }
        }
        Parallel.RangeBody rows = (from, to) -> {
            Buffers buffers = BUFFERS.get();
            float[] lanes = buffers.dotLanes;
            float[] dots = buffers.dots;
            for (int i = from; i < to; i += 2) {
                int second = Math.min(i + 1, to - 1);
                for (int group = 0; group < groups; group++) {
                    dotKernel(k, a, aOff + i * lda, aOff + second * lda, bt, group * DOT_COLUMNS * k, lanes, dots);
                    int columns = Math.min(DOT_COLUMNS, n - group * DOT_COLUMNS);
                    for (int row = 0; row < (second > i ? 2 : 1); row++) {
                        int cRow = cOff + (i + row) * ldc + group * DOT_COLUMNS;
                        for (int j = 0; j < columns; j++) {
                            float value = alpha * dots[row * DOT_COLUMNS + j];
                            c[cRow + j] = beta == 0f ? value : value + beta * c[cRow + j];
                        }
                    }
                }
            }
        };
        if ((long) m * n * k >= PARALLEL_MIN_FLOPS) {
            Parallel.forRange(m, 16, 2, rows);
        } else {
            rows.run(0, m);
        }
    }

    /**
     * dots [2, 8] = the dot products of rows a0 and a1 of A with the 8 rows of bt from btIndex, each k
     * long, accumulating in 16 vector registers; lanes [16, LANES] is scratch for the reduction.
     */
    private static void dotKernel(int k, float[] a, int a0, int a1, float[] bt, int btIndex, float[] lanes, float[] dots) {
        FloatVector s00 = FloatVector.zero(SPECIES), s01 = FloatVector.zero(SPECIES);
        FloatVector s02 = FloatVector.zero(SPECIES), s03 = FloatVector.zero(SPECIES);
        FloatVector s04 = FloatVector.zero(SPECIES), s05 = FloatVector.zero(SPECIES);
        FloatVector s06 = FloatVector.zero(SPECIES), s07 = FloatVector.zero(SPECIES);
        FloatVector s10 = FloatVector.zero(SPECIES), s11 = FloatVector.zero(SPECIES);
        FloatVector s12 = FloatVector.zero(SPECIES), s13 = FloatVector.zero(SPECIES);
        FloatVector s14 = FloatVector.zero(SPECIES), s15 = FloatVector.zero(SPECIES);
        FloatVector s16 = FloatVector.zero(SPECIES), s17 = FloatVector.zero(SPECIES);
        int bound = SPECIES.loopBound(k);
        for (int p = 0; p < bound; p += LANES) {
            FloatVector x0 = FloatVector.fromArray(SPECIES, a, a0 + p);
            FloatVector x1 = FloatVector.fromArray(SPECIES, a, a1 + p);
            FloatVector w = FloatVector.fromArray(SPECIES, bt, btIndex + p);
            s00 = x0.fma(w, s00);
            s10 = x1.fma(w, s10);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + k + p);
            s01 = x0.fma(w, s01);
            s11 = x1.fma(w, s11);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + 2 * k + p);
            s02 = x0.fma(w, s02);
            s12 = x1.fma(w, s12);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + 3 * k + p);
            s03 = x0.fma(w, s03);
            s13 = x1.fma(w, s13);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + 4 * k + p);
            s04 = x0.fma(w, s04);
            s14 = x1.fma(w, s14);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + 5 * k + p);
            s05 = x0.fma(w, s05);
            s15 = x1.fma(w, s15);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + 6 * k + p);
            s06 = x0.fma(w, s06);
            s16 = x1.fma(w, s16);
            w = FloatVector.fromArray(SPECIES, bt, btIndex + 7 * k + p);
            s07 = x0.fma(w, s07);
            s17 = x1.fma(w, s17);
        }
        s00.intoArray(lanes, 0);
        s01.intoArray(lanes, LANES);
        s02.intoArray(lanes, 2 * LANES);
        s03.intoArray(lanes, 3 * LANES);
        s04.intoArray(lanes, 4 * LANES);
        s05.intoArray(lanes, 5 * LANES);
        s06.intoArray(lanes, 6 * LANES);
        s07.intoArray(lanes, 7 * LANES);
        s10.intoArray(lanes, 8 * LANES);
        s11.intoArray(lanes, 9 * LANES);
        s12.intoArray(lanes, 10 * LANES);
        s13.intoArray(lanes, 11 * LANES);
        s14.intoArray(lanes, 12 * LANES);
        s15.intoArray(lanes, 13 * LANES);
        s16.intoArray(lanes, 14 * LANES);
        s17.intoArray(lanes, 15 * LANES);
        // Lanes are summed in a fixed order, then the k tail: reduceLanes' order differs between the
        // Vector API's fallback and C2, and a result must not depend on the JIT (see VectorMath.sumLanes).
        for (int d = 0; d < 2 * DOT_COLUMNS; d++) {
            float sum = 0f;
            for (int l = 0; l < LANES; l++) {
                sum += lanes[d * LANES + l];
            }
            int aRow = d < DOT_COLUMNS ? a0 : a1;
            int btRow = btIndex + (d % DOT_COLUMNS) * k;
            for (int p = bound; p < k; p++) {
                sum = Math.fma(a[aRow + p], bt[btRow + p], sum);
            }
            dots[d] = sum;
        }
    }

    /**
     * C [m ≤ {@link #GEMV_ROWS}, n], a row of op(A) at a time against op(B) read in place: a decoding
     * step's shape, where packing B would copy the whole weight for one use of each value. Each
     * element's sum runs along k in one fixed order (an FMA chain per lane, or a dot product whose lanes
     * are summed in a fixed order), whatever the threads' split of the columns.
     */
    private static void gemvSgemm(boolean transB, int m, int n, int k, float alpha,
                                  float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                  float beta, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            int aRow = aOff + i * lda;
            int cRow = cOff + i * ldc;
            Parallel.RangeBody columns = transB
                    ? (from, to) -> rowTimesBt(k, alpha, a, aRow, b, bOff, ldb, beta, c, cRow, from, to)
                    : (from, to) -> rowTimesB(k, alpha, a, aRow, b, bOff, ldb, beta, c, cRow, from, to);
            if ((long) n * k >= PARALLEL_MIN_FLOPS) {
                Parallel.forRange(n, GEMV_GRAIN, LANES, columns);
            } else {
                columns.run(0, n);
            }
        }
    }

    /** c[j] = alpha·Σ_p a[p]·B[p, j] (+ beta·c[j]) for j in [from, to): B [k, n] row-major, streamed row by row. */
    private static void rowTimesB(int k, float alpha, float[] a, int aRow, float[] b, int bOff, int ldb,
                                  float beta, float[] c, int cRow, int from, int to) {
        int j = from;
        for (; j + 4 * LANES <= to; j += 4 * LANES) {
            FloatVector s0 = FloatVector.zero(SPECIES), s1 = FloatVector.zero(SPECIES);
            FloatVector s2 = FloatVector.zero(SPECIES), s3 = FloatVector.zero(SPECIES);
            for (int p = 0; p < k; p++) {
                FloatVector x = FloatVector.broadcast(SPECIES, a[aRow + p]);
                int row = bOff + p * ldb + j;
                s0 = FloatVector.fromArray(SPECIES, b, row).fma(x, s0);
                s1 = FloatVector.fromArray(SPECIES, b, row + LANES).fma(x, s1);
                s2 = FloatVector.fromArray(SPECIES, b, row + 2 * LANES).fma(x, s2);
                s3 = FloatVector.fromArray(SPECIES, b, row + 3 * LANES).fma(x, s3);
            }
            storeRow(s0, alpha, beta, c, cRow + j);
            storeRow(s1, alpha, beta, c, cRow + j + LANES);
            storeRow(s2, alpha, beta, c, cRow + j + 2 * LANES);
            storeRow(s3, alpha, beta, c, cRow + j + 3 * LANES);
        }
        for (; j < to; j++) {
            float sum = 0f;
            for (int p = 0; p < k; p++) {
                sum = Math.fma(b[bOff + p * ldb + j], a[aRow + p], sum);
            }
            c[cRow + j] = beta == 0f ? alpha * sum : alpha * sum + beta * c[cRow + j];
        }
    }

    private static void storeRow(FloatVector sum, float alpha, float beta, float[] c, int index) {
        FloatVector value = sum.mul(alpha);
        if (beta != 0f) {
            value = value.add(FloatVector.fromArray(SPECIES, c, index).mul(beta));
        }
        value.intoArray(c, index);
    }

    /** c[j] = alpha·(a · B[j, :]) (+ beta·c[j]) for j in [from, to): B [n, k] row-major, four rows at a time. */
    private static void rowTimesBt(int k, float alpha, float[] a, int aRow, float[] b, int bOff, int ldb,
                                   float beta, float[] c, int cRow, int from, int to) {
        float[] lanes = BUFFERS.get().dotLanes;
        int bound = SPECIES.loopBound(k);
        for (int j = from; j < to; j += 4) {
            int rows = Math.min(4, to - j);
            int b0 = bOff + j * ldb;
            int b1 = bOff + (j + Math.min(1, rows - 1)) * ldb;
            int b2 = bOff + (j + Math.min(2, rows - 1)) * ldb;
            int b3 = bOff + (j + Math.min(3, rows - 1)) * ldb;
            FloatVector s0 = FloatVector.zero(SPECIES), s1 = FloatVector.zero(SPECIES);
            FloatVector s2 = FloatVector.zero(SPECIES), s3 = FloatVector.zero(SPECIES);
            for (int p = 0; p < bound; p += LANES) {
                FloatVector x = FloatVector.fromArray(SPECIES, a, aRow + p);
                s0 = FloatVector.fromArray(SPECIES, b, b0 + p).fma(x, s0);
                s1 = FloatVector.fromArray(SPECIES, b, b1 + p).fma(x, s1);
                s2 = FloatVector.fromArray(SPECIES, b, b2 + p).fma(x, s2);
                s3 = FloatVector.fromArray(SPECIES, b, b3 + p).fma(x, s3);
            }
            s0.intoArray(lanes, 0);
            s1.intoArray(lanes, LANES);
            s2.intoArray(lanes, 2 * LANES);
            s3.intoArray(lanes, 3 * LANES);
            for (int r = 0; r < rows; r++) {
                // Lanes in a fixed order, then the k tail: the result must not depend on the JIT (see dotKernel).
                float sum = 0f;
                for (int l = 0; l < LANES; l++) {
                    sum += lanes[r * LANES + l];
                }
                int bRow = bOff + (j + r) * ldb;
                for (int p = bound; p < k; p++) {
                    sum = Math.fma(a[aRow + p], b[bRow + p], sum);
                }
                int index = cRow + j + r;
                c[index] = beta == 0f ? alpha * sum : alpha * sum + beta * c[index];
            }
        }
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
     * The Goto loop nest on every thread: op(A) is packed once, the threads sharing the work, then the
     * columns of C are cut into chunks of whole panels that each thread takes one at a time until none is
     * left, so a thread slowed by other work on its core holds up the call by one chunk at most. A chunk
     * packs its own block of B and keeps its block of C in L2 across the depth blocks. Chunks are as many
     * as a multiple of the thread count, and every element of C sees the same sums whoever computes it.
     */
    private static void chunkedSgemm(int threads, boolean transA, int m, int n, int k, float alpha,
                                     float[] a, int aOff, int lda, OperandB b,
                                     float beta, float[] c, int cOff, int ldc, Epilogue epilogue) {
        int panelRows = roundUp(m, MR);
        // [depth block][row panel][kc][MR]: the block at depth pc starts at pc·panelRows
        float[] sharedA = BUFFERS.get().sharedA(panelRows * k);
        Parallel.forRange(m, 4 * MR, MR, (from, to) -> {
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                packA(transA, a, aOff, lda, from, to - from, pc, kc, sharedA, pc * panelRows + from * kc);
            }
        });
        int panels = (n + NR - 1) / NR;
        int chunkCount = threads * Math.max(1, panels / (threads * CHUNK_PANELS));
        int chunkWidth = (panels + chunkCount - 1) / chunkCount * NR;
        Parallel.forEachChunk((n + chunkWidth - 1) / chunkWidth, chunk -> {
            int jc = chunk * chunkWidth;
            int nc = Math.min(chunkWidth, n - jc);
            Buffers buffers = BUFFERS.get();
            float[] packedB = buffers.packedB(roundUp(nc, NR) * KC);
            boolean lowRank = epilogue != null && epilogue.hasLowRank();
            int rank = lowRank ? epilogue.rank() : 0;
            float[] packedV = buffers.packedV(roundUp(nc, NR) * rank);
            if (lowRank) {
                packB(epilogue.transV(), epilogue.v(), epilogue.vOff(), epilogue.ldv(), 0, rank, jc, nc, packedV, 0);
            }
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                b.pack(pc, kc, jc, nc, packedB, 0);
                BlockB blockB = new BlockB(packedB, null, 0, 0, kc);
                Epilogue blockEpilogue = pc + kc < k || epilogue == null ? null : epilogue.slice(0, jc);
                macroKernel(transA, a, aOff, lda, m, pc, sharedA, pc * panelRows, blockB, nc, alpha, pc == 0 ? beta : 1f,
                        c, cOff + jc, ldc, blockEpilogue, packedV);
            }
        });
    }

    /**
     * The Goto loop nest on one thread: per (jc, pc) block B is packed once, per ic block A, and the
     * micro-kernel runs over every MR×NR tile. When op(A) is a single panel tall no B panel is used
     * twice, so packing would only copy it: full panels of an untransposed float32 B are then read in place.
     */
    private static void blockedSgemm(boolean transA, int m, int n, int k, float alpha,
                                     float[] a, int aOff, int lda, OperandB b,
                                     float beta, float[] c, int cOff, int ldc, Epilogue epilogue) {
        boolean direct = m <= MR && b.readableInPlace();
        Buffers buffers = BUFFERS.get();
        float[] packedB = buffers.packedB(roundUp(Math.min(n, NC), NR) * KC);
        boolean lowRank = epilogue != null && epilogue.hasLowRank();
        int rank = lowRank ? epilogue.rank() : 0;
        float[] packedV = buffers.packedV(roundUp(Math.min(n, NC), NR) * rank);
        for (int jc = 0; jc < n; jc += NC) {
            int nc = Math.min(NC, n - jc);
            if (lowRank) {
                packB(epilogue.transV(), epilogue.v(), epilogue.vOff(), epilogue.ldv(), 0, rank, jc, nc, packedV, 0);
            }
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                int firstPacked = direct ? nc / NR * NR : 0;
                if (firstPacked < nc) {
                    b.pack(pc, kc, jc + firstPacked, nc - firstPacked, packedB, firstPacked * kc);
                }
                BlockB blockB = new BlockB(packedB, direct ? b.values() : null, direct ? b.offset() + pc * b.ld() + jc : 0,
                        b.ld(), kc);
                Epilogue blockEpilogue = pc + kc < k || epilogue == null ? null : epilogue.slice(0, jc);
                macroKernel(transA, a, aOff, lda, m, pc, null, 0, blockB, nc, alpha, pc == 0 ? beta : 1f, c, cOff + jc, ldc,
                        blockEpilogue, packedV);
            }
        }
    }

    /**
     * op(B) as the packed paths read it: a float32 array ({@code values} from {@code offset}, leading dimension
     * {@code ld}), or a {@link FrozenMatrix} ({@code frozen}, values null) widened as it is packed.
     */
    private record OperandB(boolean transB, float[] values, int offset, int ld, FrozenMatrix frozen) {

        /** Full panels of an untransposed float32 B are already laid out as the micro-kernel reads them. */
        boolean readableInPlace() {
            return frozen == null && !transB;
        }

        /** Packs depth [pc, pc+kc) × columns [jc, jc+nc) into panels from packedOff on (see packB). */
        void pack(int pc, int kc, int jc, int nc, float[] packed, int packedOff) {
            if (frozen == null) {
                packB(transB, values, offset, ld, pc, kc, jc, nc, packed, packedOff);
            } else {
                packFrozen(transB, frozen, pc, kc, jc, nc, packed, packedOff);
            }
        }
    }

    /**
     * Where the micro-kernel finds the current kc×nc block of op(B): packed panels, or — when
     * {@code direct} is not null — full panels in place in B from {@code directIndex} (row stride ldb),
     * with only the last, partial panel packed.
     */
    private record BlockB(float[] packed, float[] direct, int directIndex, int ldb, int kc) {}

    /**
     * Multiplies the m rows of op(A) at depth [pc, pc+kc) with the nc columns of the current B block,
     * into C (cBlock: C's index of the block's first column), adding the epilogue's terms when given
     * (packedV: its V, packed for this block). op(A) comes packed for all m rows at this depth in
     * sharedA from sharedAIndex, or, when sharedA is null, is packed here MC rows at a time.
     */
    private static void macroKernel(boolean transA, float[] a, int aOff, int lda, int m, int pc,
                                    float[] sharedA, int sharedAIndex, BlockB blockB, int nc, float alpha, float beta,
                                    float[] c, int cBlock, int ldc, Epilogue epilogue, float[] packedV) {
        int kc = blockB.kc();
        Buffers buffers = BUFFERS.get();
        float[] packedA = sharedA != null ? sharedA : buffers.packedA;
        float[] tile = buffers.tile;
        boolean lowRank = epilogue != null && epilogue.hasLowRank();
        int rank = lowRank ? epilogue.rank() : 0;
        float[] packedU = buffers.packedU(roundUp(MC, MR) * rank);
        float[] lowRankTile = lowRank ? buffers.lowRankTile : null;
        for (int ic = 0; ic < m; ic += MC) {
            int mc = Math.min(MC, m - ic);
            int aBlock = sharedA != null ? sharedAIndex + ic * kc : 0;
            if (sharedA == null) {
                packA(transA, a, aOff, lda, ic, mc, pc, kc, packedA, 0);
            }
            if (lowRank) {
                packA(false, epilogue.u(), epilogue.uOff(), epilogue.ldu(), ic, mc, 0, rank, packedU, 0);
            }
            for (int jr = 0; jr < nc; jr += NR) {
                int nr = Math.min(NR, nc - jr);
                boolean inPlace = blockB.direct() != null && nr == NR;
                float[] bSource = inPlace ? blockB.direct() : blockB.packed();
                int bPanel = inPlace ? blockB.directIndex() + jr : jr * kc;
                int bStride = inPlace ? blockB.ldb() : NR;
                for (int ir = 0; ir < mc; ir += MR) {
                    int mr = Math.min(MR, mc - ir);
                    microKernel(kc, packedA, aBlock + ir * kc, bSource, bPanel, bStride, tile);
                    if (lowRank) {
                        microKernel(rank, packedU, ir * rank, packedV, jr * rank, NR, lowRankTile);
                    }
                    storeTile(tile, alpha, beta, c, cBlock + (ic + ir) * ldc + jr, ldc, mr, nr, epilogue, ic + ir, jr, lowRankTile);
                }
            }
        }
    }

    /**
     * Packs rows [ic, ic+mc) × depth [pc, pc+kc) of op(A) into panels of MR rows: within a panel the MR
     * values of one depth index are adjacent. Rows past mc are zero so the micro-kernel needs no edge case.
     */
    private static void packA(boolean transA, float[] a, int aOff, int lda, int ic, int mc, int pc, int kc,
                              float[] packed, int packedOff) {
        for (int ir = 0; ir < mc; ir += MR) {
            int panel = packedOff + ir * kc;
            int rows = Math.min(MR, mc - ir);
            if (transA && rows == MR) {
                // each depth index's MR values are adjacent in A already: one MR-wide vector copy
                for (int p = 0; p < kc; p++) {
                    FloatVector.fromArray(PANEL_ROW, a, aOff + (pc + p) * lda + ic + ir).intoArray(packed, panel + p * MR);
                }
            } else if (transA) {
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
            } else if (rows == MR) {
                // one gather per LANES/MR depth steps: MR read streams, one per row, and sequential writes
                int steps = LANES / MR;
                int[] offsets = new int[LANES];
                for (int l = 0; l < LANES; l++) {
                    offsets[l] = (l % MR) * lda + l / MR;
                }
                int src = aOff + (ic + ir) * lda + pc;
                int p = 0;
                for (int bound = kc - kc % steps; p < bound; p += steps) {
                    FloatVector.fromArray(SPECIES, a, src + p, offsets, 0).intoArray(packed, panel + p * MR);
                }
                for (; p < kc; p++) {
                    for (int i = 0; i < MR; i++) {
                        packed[panel + p * MR + i] = a[src + i * lda + p];
                    }
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    int dst = panel + p * MR;
                    for (int i = 0; i < MR; i++) {
                        packed[dst + i] = i < rows ? a[aOff + (ic + ir + i) * lda + pc + p] : 0f;
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
            if (transB && cols == NR) {
                // one gather per vector: NR read streams, one per column of op(B), and sequential writes
                int[] columnOffsets = new int[NR];
                for (int j = 0; j < NR; j++) {
                    columnOffsets[j] = j * ldb;
                }
                int src = bOff + (jc + jr) * ldb + pc;
                for (int p = 0; p < kc; p++) {
                    int dst = panel + p * NR;
                    for (int v = 0; v < NR; v += LANES) {
                        FloatVector.fromArray(SPECIES, b, src + p, columnOffsets, v).intoArray(packed, dst + v);
                    }
                }
            } else if (transB) {
                int src = bOff + (jc + jr) * ldb + pc;
                for (int p = 0; p < kc; p++) {
                    int dst = panel + p * NR;
                    for (int j = 0; j < NR; j++) {
                        packed[dst + j] = j < cols ? b[src + j * ldb + p] : 0f;
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
     * packB's panels from a {@link FrozenMatrix}, widened as they are written: the weight is read once, in its
     * own format, and the panels get exactly the float32 values its widening gives. Untransposed, a depth
     * index's NR values are a run of one row of B, widened in place in the panel; transposed, a panel's NR
     * columns are NR rows of B, each widened for the kc depths into a small buffer that stays in L1 and then
     * transposed into the panel as a float32 B would be.
     */
    private static void packFrozen(boolean transB, FrozenMatrix b, int pc, int kc, int jc, int nc,
                                   float[] packed, int packedOff) {
        if (transB) {
            float[] rows = BUFFERS.get().frozenRows(NR * kc);
            for (int jr = 0; jr < nc; jr += NR) {
                int cols = Math.min(NR, nc - jr);
                for (int j = 0; j < cols; j++) {
                    b.widen(jc + jr + j, pc, kc, rows, j * kc);
                }
                packB(true, rows, 0, kc, 0, kc, 0, cols, packed, packedOff + jr * kc);
            }
            return;
        }
        // row by row of B, so the weight is read sequentially; each row's run feeds every panel at that depth
        for (int p = 0; p < kc; p++) {
            for (int jr = 0; jr < nc; jr += NR) {
                int cols = Math.min(NR, nc - jr);
                int dst = packedOff + jr * kc + p * NR;
                b.widen(pc + p, jc + jr, cols, packed, dst);
                if (cols < NR) {
                    java.util.Arrays.fill(packed, dst + cols, dst + NR, 0f);
                }
            }
        }
    }

    /**
     * tile [MR, NR] = Apanel·Bpanel, accumulating in 16 vector registers (8 rows × 2 vectors). packedA
     * holds kc groups of MR values from aIndex; packedB kc groups of NR values from bIndex, bStride apart.
     */
    private static void microKernel(int kc, float[] packedA, int aIndex, float[] packedB, int bIndex, int bStride, float[] tile) {
        FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
        FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
        FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
        FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
        FloatVector c4_0 = FloatVector.zero(SPECIES), c4_1 = FloatVector.zero(SPECIES);
        FloatVector c5_0 = FloatVector.zero(SPECIES), c5_1 = FloatVector.zero(SPECIES);
        FloatVector c6_0 = FloatVector.zero(SPECIES), c6_1 = FloatVector.zero(SPECIES);
        FloatVector c7_0 = FloatVector.zero(SPECIES), c7_1 = FloatVector.zero(SPECIES);
        int bi = bIndex;
        for (int ai = aIndex, end = aIndex + kc * MR; ai < end; ai += MR, bi += bStride) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, packedB, bi);
            FloatVector b1 = FloatVector.fromArray(SPECIES, packedB, bi + LANES);
            FloatVector a0 = FloatVector.broadcast(SPECIES, packedA[ai]);
            c0_0 = a0.fma(b0, c0_0);
            c0_1 = a0.fma(b1, c0_1);
            FloatVector a1 = FloatVector.broadcast(SPECIES, packedA[ai + 1]);
            c1_0 = a1.fma(b0, c1_0);
            c1_1 = a1.fma(b1, c1_1);
            FloatVector a2 = FloatVector.broadcast(SPECIES, packedA[ai + 2]);
            c2_0 = a2.fma(b0, c2_0);
            c2_1 = a2.fma(b1, c2_1);
            FloatVector a3 = FloatVector.broadcast(SPECIES, packedA[ai + 3]);
            c3_0 = a3.fma(b0, c3_0);
            c3_1 = a3.fma(b1, c3_1);
            FloatVector a4 = FloatVector.broadcast(SPECIES, packedA[ai + 4]);
            c4_0 = a4.fma(b0, c4_0);
            c4_1 = a4.fma(b1, c4_1);
            FloatVector a5 = FloatVector.broadcast(SPECIES, packedA[ai + 5]);
            c5_0 = a5.fma(b0, c5_0);
            c5_1 = a5.fma(b1, c5_1);
            FloatVector a6 = FloatVector.broadcast(SPECIES, packedA[ai + 6]);
            c6_0 = a6.fma(b0, c6_0);
            c6_1 = a6.fma(b1, c6_1);
            FloatVector a7 = FloatVector.broadcast(SPECIES, packedA[ai + 7]);
            c7_0 = a7.fma(b0, c7_0);
            c7_1 = a7.fma(b1, c7_1);
        }
        c0_0.intoArray(tile, 0);
        c0_1.intoArray(tile, LANES);
        c1_0.intoArray(tile, 1 * NR);
        c1_1.intoArray(tile, 1 * NR + LANES);
        c2_0.intoArray(tile, 2 * NR);
        c2_1.intoArray(tile, 2 * NR + LANES);
        c3_0.intoArray(tile, 3 * NR);
        c3_1.intoArray(tile, 3 * NR + LANES);
        c4_0.intoArray(tile, 4 * NR);
        c4_1.intoArray(tile, 4 * NR + LANES);
        c5_0.intoArray(tile, 5 * NR);
        c5_1.intoArray(tile, 5 * NR + LANES);
        c6_0.intoArray(tile, 6 * NR);
        c6_1.intoArray(tile, 6 * NR + LANES);
        c7_0.intoArray(tile, 7 * NR);
        c7_1.intoArray(tile, 7 * NR + LANES);
    }

    /**
     * C[0:mr, 0:nr] = alpha·tile + beta·C, plus the epilogue's bias and scale·lowRankTile (through the
     * dropout mask, if any) when given; the tile sits at (row, column) of the epilogue's block. The accumulators pass through {@code tile} rather than as
     * arguments: a vector handed to a method that is not inlined would be boxed on every call.
     */
    private static void storeTile(float[] tile, float alpha, float beta, float[] c, int cIndex, int ldc, int mr, int nr,
                                  Epilogue epilogue, int row, int column, float[] lowRankTile) {
        FloatVector alphas = FloatVector.broadcast(SPECIES, alpha);
        float[] bias = epilogue == null ? null : epilogue.bias();
        boolean lowRank = epilogue != null && epilogue.hasLowRank();
        FloatVector betas = FloatVector.broadcast(SPECIES, beta);
        FloatVector scales = FloatVector.broadcast(SPECIES, lowRank ? epilogue.scale() : 0f);
        long[] dropoutMask = lowRank ? epilogue.dropoutMask() : null;
        for (int v = 0; v < nr; v += LANES) {
            VectorMask<Float> mask = SPECIES.indexInRange(v, nr);
            boolean full = v + LANES <= nr;
            FloatVector biasVector = bias == null ? null : full
                    ? FloatVector.fromArray(SPECIES, bias, epilogue.biasOff() + column + v)
                    : FloatVector.fromArray(SPECIES, bias, epilogue.biasOff() + column + v, mask);
            for (int i = 0; i < mr; i++) {
                int index = cIndex + i * ldc + v;
                FloatVector result = FloatVector.fromArray(SPECIES, tile, i * NR + v).mul(alphas);
                if (beta != 0f) {
                    FloatVector old = full ? FloatVector.fromArray(SPECIES, c, index) : FloatVector.fromArray(SPECIES, c, index, mask);
                    result = old.fma(betas, result);
                }
                if (biasVector != null) {
                    result = result.add(biasVector);
                }
                if (lowRank) {
                    FloatVector term = FloatVector.fromArray(SPECIES, lowRankTile, i * NR + v).mul(scales);
                    if (dropoutMask != null) {
                        long bit = epilogue.maskOffset() + (long) (row + i) * epilogue.maskStride() + column + v;
                        term = FloatVector.zero(SPECIES).blend(term, VectorMask.fromLong(SPECIES, maskBits(dropoutMask, bit)));
                    }
                    result = result.add(term);
                }
                if (full) {
                    result.intoArray(c, index);
                } else {
                    result.intoArray(c, index, mask);
                }
            }
        }
    }

    /** The LANES mask bits from bit {@code first} on, which may straddle two words. */
    private static long maskBits(long[] mask, long first) {
        int word = (int) (first >>> 6);
        int shift = (int) (first & 63);
        long bits = mask[word] >>> shift;
        if (shift > 64 - LANES && word + 1 < mask.length) {
            bits |= mask[word + 1] << (64 - shift);
        }
        return bits;
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

    private static void checkEpilogue(Epilogue epilogue, int m, int n) {
        if (m == 0 || n == 0) {
            return;
        }
        if (epilogue.bias() != null && (epilogue.biasOff() < 0 || epilogue.biasOff() + (long) n > epilogue.bias().length)) {
            throw new IllegalArgumentException("bias: " + n + " columns at offset " + epilogue.biasOff()
                    + " do not fit an array of " + epilogue.bias().length);
        }
        if (epilogue.hasLowRank()) {
            int rank = epilogue.rank();
            checkMatrix("U", epilogue.u(), epilogue.uOff(), m, rank, epilogue.ldu());
            checkMatrix("V", epilogue.v(), epilogue.vOff(), epilogue.transV() ? n : rank, epilogue.transV() ? rank : n, epilogue.ldv());
            long[] mask = epilogue.dropoutMask();
            if (mask != null && (epilogue.maskStride() < n
                    || epilogue.maskOffset() + (long) (m - 1) * epilogue.maskStride() + n > 64L * mask.length)) {
                throw new IllegalArgumentException("dropout mask of " + mask.length + " words does not cover " + m + "×" + n
                        + " elements with row stride " + epilogue.maskStride());
            }
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
