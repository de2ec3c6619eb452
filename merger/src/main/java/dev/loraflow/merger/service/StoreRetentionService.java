package dev.loraflow.merger.service;

import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.Retention;
import dev.loraflow.service.support.StoreConfig;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Keeps the artifact store from growing forever: every {@code loraflow.store.retention-interval} it deletes
 * the artifacts no live reference names that were stored longer than {@code loraflow.store.retention} ago
 * ({@link Retention}), and measures the store's size for {@code loraflow_store_bytes}. The merger runs it
 * because it writes the model references that decide what is served; a retention of 0 measures only.
 */
@ApplicationScoped
public class StoreRetentionService {

    private static final Logger LOG = Logger.getLogger(StoreRetentionService.class);

    @Inject
    StoreConfig storeConfig;
    @ConfigProperty(name = "loraflow.store.retention")
    Duration retention;
    @ConfigProperty(name = "loraflow.store.retention-interval")
    Duration interval;

    @Inject
    MeterRegistry metrics;

    private final AtomicLong bytes = new AtomicLong();
    private Counter deleted;
    private Counter freed;
    private ArtifactStore store;
    private ScheduledExecutorService scheduler;

    void start(@Observes StartupEvent event) throws IOException {
        if (interval.isNegative() || interval.isZero()) {
            throw new IllegalArgumentException("loraflow.store.retention-interval must be > 0, got " + interval);
        }
        store = storeConfig.open();
        Gauge.builder("loraflow.store.bytes", bytes, AtomicLong::get).baseUnit("bytes")
                .description("bytes in the artifact store (artifacts, references, writes in progress), as last measured")
                .register(metrics);
        deleted = Counter.builder("loraflow.store.artifacts.deleted")
                .description("artifacts deleted by retention: unreferenced and older than loraflow.store.retention")
                .register(metrics);
        freed = Counter.builder("loraflow.store.deleted").baseUnit("bytes").description("bytes freed by retention")
                .register(metrics);
        scheduler = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().name("loraflow-store-retention")
                .daemon().factory());
        scheduler.scheduleWithFixedDelay(this::sweep, 0, interval.toMillis(), TimeUnit.MILLISECONDS);
    }

    void stop(@Observes ShutdownEvent event) {
        if (scheduler != null) {
            scheduler.shutdownNow();
        }
    }

    /** One pass; a failure is logged and the next pass tries again. */
    public void sweep() {
        try {
            if (retention.isNegative() || retention.isZero()) {
                bytes.set(store.diskUsage());
                return;
            }
            ArtifactStore.Sweep sweep = Retention.sweep(store, retention, Instant.now());
            bytes.set(sweep.bytesInUse());
            deleted.increment(sweep.artifactsDeleted());
            freed.increment(sweep.bytesFreed());
            if (sweep.artifactsDeleted() > 0) {
                LOG.infof("retention deleted %d unreferenced artifact(s) older than %s (%d bytes); %d kept, the store holds %d bytes",
                        sweep.artifactsDeleted(), retention, sweep.bytesFreed(), sweep.artifactsKept(), sweep.bytesInUse());
            }
        } catch (IOException | RuntimeException e) {
            LOG.warnf(e, "store retention pass failed, tried again in %s: %s", interval, e.getMessage());
        }
    }

    /** The store's size as last measured. */
    public long storeBytes() {
        return bytes.get();
    }
}
