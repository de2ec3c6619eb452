package dev.loraflow.platform.kafka;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/** What every service does the same way with Kafka: create its topics, read committed records, publish durably. */
public final class KafkaSetup {

    private KafkaSetup() {}

    /**
     * Creates the topics that do not exist yet (one replica: a local broker; on Kubernetes Strimzi's
     * KafkaTopics create them first), so a fresh broker needs no setup. Another service creating the
     * same topic first is no error.
     *
     * @param partitionsByTopic topic name → its partition count
     */
    public static void ensureTopics(KafkaClientSettings kafka, Map<String, Integer> partitionsByTopic) {
        ensureTopics(kafka, partitionsByTopic, Map.of());
    }

    /**
     * As {@link #ensureTopics(KafkaClientSettings, Map)}, creating topics with their configuration (for example
     * {@code max.message.bytes}); topics that exist keep theirs.
     *
     * @param configsByTopic topic name → its topic-level configuration, for the topics that need one
     */
    public static void ensureTopics(KafkaClientSettings kafka, Map<String, Integer> partitionsByTopic,
                                    Map<String, Map<String, String>> configsByTopic) {
        try (Admin admin = Admin.create(kafka.properties())) {
            Set<String> existing = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            List<NewTopic> missing = new ArrayList<>();
            partitionsByTopic.forEach((topic, partitions) -> {
                if (!existing.contains(topic)) {
                    missing.add(new NewTopic(topic, partitions, (short) 1).configs(configsByTopic.getOrDefault(topic, Map.of())));
                }
            });
            if (!missing.isEmpty()) {
                try {
                    admin.createTopics(missing).all().get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while creating topics", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("cannot reach Kafka at " + kafka + " to create topics: " + e.getMessage(), e);
        }
    }

    /** A producer whose acknowledged records are on every in-sync replica and never duplicated by its retries. */
    public static KafkaProducer<byte[], byte[]> durableProducer(KafkaClientSettings kafka, Properties extra) {
        Properties config = kafka.properties();
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        config.putAll(extra);
        return new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer());
    }

    /**
     * A consumer of a group (or none, when {@code groupId} is null) that reads committed records from the
     * earliest offset and commits only when its caller says so.
     */
    public static KafkaConsumer<byte[], byte[]> committedReader(KafkaClientSettings kafka, String groupId, Properties extra) {
        Properties config = kafka.properties();
        if (groupId != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        }
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        config.putAll(extra);
        return new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    /** Sends and waits for the broker's acknowledgement: nothing moves on before the record is durable. */
    public static void sendAndWait(Producer<byte[], byte[]> producer, String topic, String key, byte[] value) {
        try {
            producer.send(new ProducerRecord<>(topic, key == null ? null : key.getBytes(StandardCharsets.UTF_8), value)).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while publishing to " + topic, e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("cannot publish to " + topic + ": " + e.getCause().getMessage(), e.getCause());
        }
    }
}
