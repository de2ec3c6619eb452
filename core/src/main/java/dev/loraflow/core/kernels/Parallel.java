package dev.loraflow.core.kernels;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.RecursiveAction;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Splits index ranges over the machine's cores. Work smaller than the grain runs on the caller's
 * thread, because waking a second core costs more than a few microseconds of arithmetic.
 */
public final class Parallel {

    /** Work of one range [from, to). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    private static final ForkJoinPool POOL = createPool();
    /** Set while a caller thread runs its own share of a split, so work nested in it stays on that thread. */
    private static final ThreadLocal<Boolean> RUNNING_SHARE = ThreadLocal.withInitial(() -> Boolean.FALSE);

    private Parallel() {}

    private static ForkJoinPool createPool() {
        int threads = Integer.getInteger("loraflow.threads", Runtime.getRuntime().availableProcessors());
        return new ForkJoinPool(Math.max(1, threads), pool -> {
            var worker = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(pool);
            worker.setName("loraflow-kernel-" + worker.getPoolIndex());
            worker.setDaemon(true);
            return worker;
        }, null, false);
    }

    /** Number of threads kernels may use. */
    public static int threads() {
        return POOL.getParallelism();
    }

    /**
     * Runs {@code body} over [0, n) in at most {@link #threads()} contiguous chunks, each a multiple of
     * {@code align} long (except the last), and none shorter than {@code grain} indices.
     */
    public static void forRange(int n, int grain, int align, RangeBody body) {
        int chunks = Math.min(threads(), Math.max(1, n / Math.max(1, grain)));
        if (chunks <= 1 || insidePool()) {
            body.run(0, n);
            return;
        }
        int per = (n + chunks - 1) / chunks;
        int step = (per + align - 1) / align * align;
        if (step >= n) {
            body.run(0, n);
            return;
        }
        int count = (n + step - 1) / step;
        RecursiveAction[] others = new RecursiveAction[count - 1];
        for (int i = 1; i < count; i++) {
            int lo = i * step;
            int hi = Math.min(n, lo + step);
            others[i - 1] = new RecursiveAction() {
                @Override
                protected void compute() {
                    body.run(lo, hi);
                }
            };
            POOL.execute(others[i - 1]);
        }
        RUNNING_SHARE.set(Boolean.TRUE);
        try {
            body.run(0, step);
        } finally {
            RUNNING_SHARE.set(Boolean.FALSE);
        }
        for (RecursiveAction task : others) {
            task.join();
        }
    }

    /** Work of one chunk index. */
    @FunctionalInterface
    public interface ChunkBody {
        void run(int chunk);
    }

    /**
     * Runs {@code body} for every chunk in [0, count), on up to {@link #threads()} threads that each take
     * the next unclaimed chunk when done with one: a thread slowed by other work on its core leaves more
     * chunks to the others instead of holding up the whole call. Which thread runs a chunk varies.
     */
    public static void forEachChunk(int count, ChunkBody body) {
        int helpers = Math.min(threads(), count) - 1;
        if (helpers <= 0 || insidePool()) {
            for (int chunk = 0; chunk < count; chunk++) {
                body.run(chunk);
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable claimChunks = () -> {
            for (int chunk = next.getAndIncrement(); chunk < count; chunk = next.getAndIncrement()) {
                body.run(chunk);
            }
        };
        RecursiveAction[] others = new RecursiveAction[helpers];
        for (int i = 0; i < helpers; i++) {
            others[i] = new RecursiveAction() {
                @Override
                protected void compute() {
                    claimChunks.run();
                }
            };
            POOL.execute(others[i]);
        }
        RUNNING_SHARE.set(Boolean.TRUE);
        try {
            claimChunks.run();
        } finally {
            RUNNING_SHARE.set(Boolean.FALSE);
        }
        for (RecursiveAction task : others) {
            task.join();
        }
    }

    /** Whether this thread already runs a share of a split: splitting again would oversubscribe the cores. */
    private static boolean insidePool() {
        return RUNNING_SHARE.get() || Thread.currentThread() instanceof ForkJoinWorkerThread worker && worker.getPool() == POOL;
    }

    /** Same as {@link #forRange(int, int, int, RangeBody)} with no alignment. */
    public static void forRange(int n, int grain, RangeBody body) {
        forRange(n, grain, 1, body);
    }
}
