package dev.loraflow.serving.messaging;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * One topic's history at start-up: the records below the end offsets its partitions had when they were first
 * assigned. They are collected rather than acted on, and handed over once, whole, so that the newest of them can
 * be chosen (loading every historical version in turn would be slow and pointless); records after them are live.
 */
final class StartupHistory {

    private final Map<TopicPartition, Long> ends = new HashMap<>();
    private final List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
    /** Records past the end offsets that arrived while other partitions' history was still being read. */
    private final List<ConsumerRecord<byte[], byte[]>> later = new ArrayList<>();
    private boolean assigned;
    private boolean handedOver;

    /**
     * The partitions first assigned, with the consumer that reads them (on its polling thread); later
     * assignments (a partition added to the topic) are read as live.
     *
     * @return true when there is no history to wait for (every partition empty): hand it over now
     */
    synchronized boolean assigned(Consumer<?, ?> consumer, Collection<TopicPartition> partitions) {
        if (assigned) {
            return false;
        }
        assigned = true;
        Map<TopicPartition, Long> endOffsets = consumer.endOffsets(partitions);
        for (TopicPartition partition : partitions) {
            long end = endOffsets.getOrDefault(partition, 0L);
            if (consumer.position(partition) < end) {
                ends.put(partition, end);
            }
        }
        return ends.isEmpty();
    }

    /**
     * Takes a record while the history is being read: true when held (history, or a live record that must wait
     * for the history so as not to be overtaken by an older version); false once the history was handed over.
     */
    synchronized boolean add(ConsumerRecord<byte[], byte[]> record) {
        if (handedOver) {
            return false;
        }
        TopicPartition partition = new TopicPartition(record.topic(), record.partition());
        Long end = ends.get(partition);
        if (end == null || record.offset() >= end) {
            later.add(record);
            return true;
        }
        records.add(record);
        if (record.offset() + 1 >= end) {
            ends.remove(partition);
        }
        return true;
    }

    /** The history, and the live records that arrived while it was read, in their order. */
    record Handover(List<ConsumerRecord<byte[], byte[]>> history, List<ConsumerRecord<byte[], byte[]>> later) {}

    /** Every partition read up to its end offset: the history, once; null before, and after it was handed over. */
    synchronized Handover complete() {
        if (handedOver || !assigned || !ends.isEmpty()) {
            return null;
        }
        handedOver = true;
        Handover handover = new Handover(List.copyOf(records), List.copyOf(later));
        records.clear();
        later.clear();
        return handover;
    }
}
