package dev.loraflow.core.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class LearningRateScheduleTest {

    @Test
    void cosineWarmsUpLinearlyThenFallsToZeroAsTransformersComputesIt() {
        var schedule = new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, 1e-3, 10, 110);
        assertEquals(0f, schedule.at(0));
        assertEquals(5e-4f, schedule.at(5), 1e-9f);
        assertEquals(1e-3f, schedule.at(10), 1e-9f);
        assertEquals(5e-4f, schedule.at(60), 1e-9f, "half way through the decay: cos(π/2)");
        assertEquals((float) (1e-3 * 0.5 * (1 + Math.cos(Math.PI * 0.25))), schedule.at(35), 1e-9f);
        assertEquals(0f, schedule.at(110), 1e-12f);
        assertEquals(0f, schedule.at(500), "never negative past the end");
    }

    @Test
    void constantHoldsThePeakAfterWarmup() {
        var schedule = new LearningRateSchedule(LearningRateSchedule.Shape.CONSTANT, 2e-4, 4, 100);
        assertEquals(1e-4f, schedule.at(2), 1e-10f);
        assertEquals(2e-4f, schedule.at(4));
        assertEquals(2e-4f, schedule.at(99));
        assertEquals(2e-4f, new LearningRateSchedule(LearningRateSchedule.Shape.CONSTANT, 2e-4, 0, 1).at(0));
    }

    @Test
    void nonsenseIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, -1, 0, 10));
        assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, Double.NaN, 0, 10));
        assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, 1, -1, 10));
        assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule(LearningRateSchedule.Shape.COSINE, 1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule(null, 1, 0, 10));
    }
}
