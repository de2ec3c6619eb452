package dev.loraflow.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class ParallelTest {

    @Test
    void forEachChunkRunsEveryChunkOnce() {
        int count = 37;
        AtomicIntegerArray runs = new AtomicIntegerArray(count);
        Parallel.forEachChunk(count, chunk -> {
            // enough work per chunk that the threads overlap
            double sink = 0;
            for (int i = 0; i < 20_000; i++) {
                sink += Math.sqrt(i + chunk);
            }
            runs.addAndGet(chunk, sink > 0 ? 1 : 2);
        });
        for (int chunk = 0; chunk < count; chunk++) {
            assertEquals(1, runs.get(chunk), "chunk " + chunk);
        }
    }

    @Test
    void workSplitInsideAChunkStaysOnItsThread() {
        int count = 6;
        AtomicIntegerArray threadsSeen = new AtomicIntegerArray(count);
        Parallel.forEachChunk(count, chunk -> {
            Thread owner = Thread.currentThread();
            Parallel.forRange(1000, 1, (from, to) -> {
                if (Thread.currentThread() != owner) {
                    threadsSeen.incrementAndGet(chunk);
                }
            });
            Parallel.forEachChunk(4, inner -> {
                if (Thread.currentThread() != owner) {
                    threadsSeen.incrementAndGet(chunk);
                }
            });
        });
        for (int chunk = 0; chunk < count; chunk++) {
            assertEquals(0, threadsSeen.get(chunk), "chunk " + chunk + " ran nested work on another thread");
        }
    }
}
