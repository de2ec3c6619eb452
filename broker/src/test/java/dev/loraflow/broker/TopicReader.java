package dev.loraflow.broker;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.function.Predicate;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/** What tests check a service published: a topic read from its start, awaiting what they expect (never a sleep). */
public final class TopicReader {

    /** Turns a record's value into what a test looks at; {@code null} leaves the record out. */
    @FunctionalInterface
    public interface Decoder<T> {
        T decode(byte[] value) throws Exception;
    }

    private TopicReader() {}

    /**
     * Reads {@code topic} from its start as {@code client} (a fresh consumer group) until {@code done} holds of
     * the decoded values read, failing after {@code timeout}.
     */
    public static <T> List<T> readUntil(Properties client, String topic, Decoder<T> decoder, Predicate<List<T>> done,
                                        Duration timeout) throws Exception {
        Properties config = new Properties();
        config.putAll(client);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "test-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<T> seen = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!done.test(seen)) {
                assertTrue(System.nanoTime() < deadline, "timed out on " + topic + " having seen " + seen.size() + " records");
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    T value = decoder.decode(record.value());
                    if (value != null) {
                        seen.add(value);
                    }
                }
            }
        }
        return seen;
    }

    /** Everything on {@code topic} that arrives within {@code duration}: for asserting what never comes. */
    public static <T> List<T> readFor(Properties client, String topic, Decoder<T> decoder, Duration duration)
            throws Exception {
        long end = System.nanoTime() + duration.toNanos();
        return readUntil(client, topic, decoder, seen -> System.nanoTime() > end, duration.plusSeconds(30));
    }
}
