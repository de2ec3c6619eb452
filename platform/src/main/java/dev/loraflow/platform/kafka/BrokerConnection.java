package dev.loraflow.platform.kafka;

import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.common.errors.TimeoutException;

/**
 * Whether a service's consuming loop reaches its broker, for its readiness: a service starts without
 * Kafka, waits for it, and reports not ready while it is gone.
 */
public final class BrokerConnection {

    private static final System.Logger LOG = System.getLogger(BrokerConnection.class.getName());
    private static final Duration RETRY = Duration.ofSeconds(2);
    private static final Duration CHECK_EVERY = Duration.ofSeconds(5);

    private volatile boolean connected;
    private long lastCheck = System.nanoTime() - Duration.ofMinutes(1).toNanos();

    /** True once the loop has talked to the broker and while it keeps answering. */
    public boolean connected() {
        return connected;
    }

    /**
     * Runs {@code setup} (creating topics, say) until it succeeds, every two seconds, while {@code running};
     * the thread's interruption ends the wait too.
     */
    public void await(Runnable setup, BooleanSupplier running) {
        while (running.getAsBoolean()) {
            try {
                setup.run();
                connected = true;
                return;
            } catch (RuntimeException e) {
                connected = false;
                LOG.log(Level.WARNING, "waiting for Kafka: " + e.getMessage());
                try {
                    Thread.sleep(RETRY);
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /** A poll returns quietly without a broker, so ask for {@code topic}'s metadata now and then to know. */
    public void check(Consumer<?, ?> consumer, String topic) {
        long now = System.nanoTime();
        if (now - lastCheck < CHECK_EVERY.toNanos()) {
            return;
        }
        lastCheck = now;
        try {
            consumer.partitionsFor(topic, Duration.ofSeconds(2));
            connected = true;
        } catch (TimeoutException e) {
            connected = false;
        }
    }

    /** The loop stopped: whatever the broker does, this service no longer reads from it. */
    public void lost() {
        connected = false;
    }
}
