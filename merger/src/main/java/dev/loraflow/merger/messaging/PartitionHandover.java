package dev.loraflow.merger.messaging;

import io.smallrye.common.annotation.Identifier;
import io.smallrye.reactive.messaging.kafka.KafkaConsumerRebalanceListener;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Collection;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.common.TopicPartition;
import org.jboss.logging.Logger;

/**
 * The checkpoints channel's rebalance listener ({@value #NAME}): a partition leaves this replica only once the
 * record of it in hand is done — merged and announced, or given up — so that no two replicas ever work on one
 * checkpoint at once.
 *
 * <p>Without it, a replica that joins (or comes back after a crash) would take partitions from one that is in
 * the middle of a merge, start the same record from the committed offset while the other still works on it,
 * and both would announce the checkpoint. Here the revocation waits for the record in hand (the group's
 * rebalance waits with it, within {@code max.poll.interval.ms}); a record of a partition no longer held is not
 * begun, and one whose work keeps failing transiently gives up at its next try; both are left unacknowledged
 * for the new owner, which finds the outcome of anything finished in the store. The offsets of the records done
 * before the revocation are committed by the connector's commit strategy; a record done during it is read again
 * by the new owner and skipped as a duplicate.
 */
@ApplicationScoped
@Identifier(PartitionHandover.NAME)
public class PartitionHandover implements KafkaConsumerRebalanceListener {

    static final String NAME = "loraflow-merger-handover";
    private static final Logger LOG = Logger.getLogger(PartitionHandover.class);

    private final Set<TopicPartition> held = ConcurrentHashMap.newKeySet();
    /** Held while a record is worked on; fair, so that a waiting revocation goes before the next record. */
    private final ReentrantLock working = new ReentrantLock(true);

    /**
     * Begins the work on a record of {@code partition}: true while this replica holds the partition, and then
     * {@link #end()} must follow on the same thread; false, without beginning, when it does not (any more).
     */
    public boolean begin(TopicPartition partition) {
        working.lock();
        if (held.contains(partition)) {
            return true;
        }
        working.unlock();
        return false;
    }

    /** The work {@link #begin} began is done (or given up). */
    public void end() {
        working.unlock();
    }

    /** Whether this replica holds {@code partition} now: work on one no longer held gives up at its next try. */
    public boolean holds(TopicPartition partition) {
        return held.contains(partition);
    }

    @Override
    public void onPartitionsAssigned(Consumer<?, ?> consumer, Collection<TopicPartition> partitions) {
        held.addAll(partitions);
    }

    @Override
    public void onPartitionsRevoked(Consumer<?, ?> consumer, Collection<TopicPartition> partitions) {
        held.removeAll(partitions);
        if (working.isLocked()) {
            LOG.infof("partitions %s revoked: handed over once the checkpoint in hand is done", partitions);
        }
        // Waits for the record in hand, if any, to be done.
        working.lock();
        working.unlock();
    }

    @Override
    public void onPartitionsLost(Consumer<?, ?> consumer, Collection<TopicPartition> partitions) {
        // Already someone else's (this replica was silent for a session timeout): nothing to wait for, only to stop.
        held.removeAll(partitions);
    }
}
