package dev.loraflow.merger.messaging;

import dev.loraflow.merger.service.MergerService;
import dev.loraflow.merger.service.Merges;
import dev.loraflow.platform.events.EventFormatException;
import io.smallrye.common.annotation.Identifier;
import io.smallrye.reactive.messaging.annotations.Blocking;
import io.smallrye.reactive.messaging.kafka.KafkaRecord;
import io.smallrye.reactive.messaging.kafka.api.IncomingKafkaRecordMetadata;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.eclipse.microprofile.reactive.messaging.Incoming;
import org.eclipse.microprofile.reactive.messaging.Metadata;
import org.jboss.logging.Logger;

/**
 * The merger's consumption of {@code loraflow.adapter.checkpoints} through the SmallRye Kafka connector (channel
 * {@value #CHANNEL}, configured in application.properties): one record at a time, on a worker thread, in order.
 *
 * <p>A record is acknowledged — and its offset committed by the connector's {@code throttled} strategy — only
 * once {@link Merges#arrived} returned, that is once its outcome is stored and announced. A record that is not a
 * checkpoint event is refused, and the connector's {@code dead-letter-queue} failure strategy publishes it to
 * the dead-letter topic with the reason ({@link DeadLetterSerializer} gives it the platform's dead-letter form).
 * Only one replica works on a partition's records at a time: {@link PartitionHandover}, the channel's rebalance
 * listener, hands a partition over only once the record in hand is done. An {@link Error} (out of memory) stops consumption: the record is neither acknowledged nor dead-lettered, the
 * service reports itself not live, and a restarted process reads it again from the committed offset.
 */
@ApplicationScoped
public class CheckpointConsumer {

    static final String CHANNEL = "checkpoints";
    private static final Logger LOG = Logger.getLogger(CheckpointConsumer.class);

    @Inject
    MergerService service;
    @Inject
    @Identifier(PartitionHandover.NAME)
    PartitionHandover handover;

    @Incoming(CHANNEL)
    @Blocking(ordered = true)
    public CompletionStage<Void> consume(KafkaRecord<byte[], byte[]> record) {
        Merges merges;
        try {
            merges = service.awaitMerges();
        } catch (Merges.Stopping stopping) {
            return new CompletableFuture<>();
        }
        TopicPartition partition = new TopicPartition(record.getTopic(), record.getPartition());
        if (!merges.alive()) {
            return new CompletableFuture<>();
        }
        if (!handover.begin(partition)) {
            // The partition is another replica's now: the record is its to take up; done here, unacknowledged.
            return CompletableFuture.completedFuture(null);
        }
        try {
            service.awaitTopics();
            merges.arrived(record.getPayload(), () -> handover.holds(partition));
            return record.ack();
        } catch (EventFormatException e) {
            // Not a checkpoint: nothing to merge, no model to announce a failure of; set aside with the reason.
            LOG.warnf("dead-lettering record %s-%d@%d: %s", record.getTopic(), record.getPartition(),
                    record.getMetadata(IncomingKafkaRecordMetadata.class).map(IncomingKafkaRecordMetadata::getOffset).orElse(-1L),
                    e.getMessage());
            RecordHeaders source = new RecordHeaders();
            if (record.getKey() != null) {
                source.add(DeadLetterSerializer.SOURCE_KEY, record.getKey());
            }
            return record.nack(e, Metadata.of(OutgoingKafkaRecordMetadata.builder().withHeaders(source).build()))
                    .thenRun(merges::countDeadLetter);
        } catch (Merges.Stopping stopping) {
            // Left unacknowledged: read again from the committed offset by the next process, or by the replica the
            // partition went to (then this channel goes on with the partitions it holds).
            return handover.holds(partition) ? new CompletableFuture<>() : CompletableFuture.completedFuture(null);
        } catch (Error error) {
            merges.died(error);
            return new CompletableFuture<>();
        } finally {
            handover.end();
        }
    }
}
