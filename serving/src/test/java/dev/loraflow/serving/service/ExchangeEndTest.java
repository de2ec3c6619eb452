package dev.loraflow.serving.service;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A client that leaves before its request reached the engine must still cancel the generation: the exchange's
 * end is remembered, not only reported to whoever listened at that moment.
 */
class ExchangeEndTest {

    @Test
    void anActionAddedAfterTheEndRunsAtOnce() {
        Generations.EndLatch end = new Generations.EndLatch();
        end.end();
        AtomicInteger runs = new AtomicInteger();
        end.then(runs::incrementAndGet);
        assertEquals(1, runs.get());
    }

    @Test
    void actionsAddedBeforeTheEndRunOnceWhenItComes() {
        Generations.EndLatch end = new Generations.EndLatch();
        AtomicInteger runs = new AtomicInteger();
        end.then(runs::incrementAndGet);
        end.then(runs::incrementAndGet);
        assertEquals(0, runs.get());
        end.end();
        end.end();
        assertEquals(2, runs.get());
    }
}
