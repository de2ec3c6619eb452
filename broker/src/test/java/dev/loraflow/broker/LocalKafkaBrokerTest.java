package dev.loraflow.broker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class LocalKafkaBrokerTest {

    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension();

    @Test
    void extensionResolvesTheClassBroker(LocalKafkaBroker broker) {
        assertSame(KAFKA.broker(), broker);
        assertTrue(broker.process().isAlive());
        assertTrue(Files.isRegularFile(broker.directory().resolve("server.properties")));
        assertTrue(Files.isRegularFile(broker.logFile()));
    }

    @Test
    void recordsSentToEachOfThreePartitionsComeBackInOrder() throws Exception {
        LocalKafkaBroker broker = KAFKA.broker();
        broker.createTopics(3, "three-partitions");
        try (Admin admin = Admin.create(broker.clientProperties(PlatformUsers.ADMIN))) {
            int partitions = admin.describeTopics(List.of("three-partitions")).allTopicNames()
                    .get(10, TimeUnit.SECONDS).get("three-partitions").partitions().size();
            assertEquals(3, partitions);
        }

        Map<Integer, List<String>> sent = new HashMap<>();
        try (KafkaProducer<String, String> producer = producer(broker, Map.of())) {
            for (int i = 0; i < 30; i++) {
                int partition = i % 3;
                String value = "record-" + i;
                producer.send(new ProducerRecord<>("three-partitions", partition, "key-" + i, value)).get();
                sent.computeIfAbsent(partition, p -> new ArrayList<>()).add(value);
            }
        }

        Map<Integer, List<String>> received = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = consumer(broker, Map.of())) {
            List<TopicPartition> partitions = List.of(
                    new TopicPartition("three-partitions", 0),
                    new TopicPartition("three-partitions", 1),
                    new TopicPartition("three-partitions", 2));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            for (ConsumerRecord<String, String> record : pollAtLeast(consumer, 30)) {
                received.computeIfAbsent(record.partition(), p -> new ArrayList<>()).add(record.value());
            }
        }
        assertEquals(sent, received);
    }

    @Test
    void readCommittedConsumerSeesCommittedTransactionsOnly() throws Exception {
        LocalKafkaBroker broker = KAFKA.broker();
        broker.createTopics(2, "transactions");
        try (KafkaProducer<String, String> producer = producer(broker,
                Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "transactions-test"))) {
            producer.initTransactions();
            sendInTransaction(producer, "committed-1", "committed-2");
            producer.beginTransaction();
            producer.send(new ProducerRecord<>("transactions", "aborted-1"));
            producer.send(new ProducerRecord<>("transactions", "aborted-2"));
            producer.flush();
            producer.abortTransaction();
            sendInTransaction(producer, "committed-3");
        }

        List<String> committed = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = consumer(broker, Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, "read-committed",
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            consumer.subscribe(List.of("transactions"));
            // Three committed records; the poll continues briefly to catch aborted ones leaking through.
            for (ConsumerRecord<String, String> record : pollAtLeast(consumer, 3)) {
                committed.add(record.value());
            }
            consumer.poll(Duration.ofMillis(500)).forEach(record -> committed.add(record.value()));
        }
        assertEquals(Set.of("committed-1", "committed-2", "committed-3"), Set.copyOf(committed));
        assertEquals(3, committed.size());

        List<String> everything = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = consumer(broker, Map.of(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted"))) {
            List<TopicPartition> partitions = List.of(
                    new TopicPartition("transactions", 0), new TopicPartition("transactions", 1));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            pollAtLeast(consumer, 5).forEach(record -> everything.add(record.value()));
        }
        assertEquals(Set.of("committed-1", "committed-2", "committed-3", "aborted-1", "aborted-2"),
                Set.copyOf(everything));
    }

    @Test
    void aStoppedBrokerRefusesClientsAndRestartsOnItsPortWithItsData() throws Exception {
        LocalKafkaBroker broker = LocalKafkaBroker.start();
        try {
            broker.createTopics(1, "outage");
            try (KafkaProducer<String, String> producer = producer(broker, Map.of())) {
                producer.send(new ProducerRecord<>("outage", "k", "before")).get();
            }
            long pid = broker.process().pid();
            broker.stop();
            assertFalse(broker.process().isAlive());
            assertThrows(java.io.IOException.class, () -> new java.net.Socket("127.0.0.1",
                    Integer.parseInt(broker.bootstrapServers().split(":")[1])).close(), "nobody listens");
            broker.restart();
            assertTrue(broker.process().isAlive());
            assertNotEquals(pid, broker.process().pid());
            try (KafkaProducer<String, String> producer = producer(broker, Map.of())) {
                producer.send(new ProducerRecord<>("outage", "k", "after")).get();
            }
            try (KafkaConsumer<String, String> consumer = consumer(broker, Map.of())) {
                List<TopicPartition> partitions = List.of(new TopicPartition("outage", 0));
                consumer.assign(partitions);
                consumer.seekToBeginning(partitions);
                assertEquals(List.of("before", "after"), pollAtLeast(consumer, 2).stream().map(ConsumerRecord::value).toList());
            }
        } finally {
            broker.close();
        }
    }

    @Test
    void quarkusTestResourceRunsASecondBrokerBesideTheFirstAndRemovesIt() throws Exception {
        KafkaBrokerTestResource resource = new KafkaBrokerTestResource();
        resource.init(Map.of("partitions", "5", "auto-create-topics", "true", "user", PlatformUsers.SERVING));
        Map<String, String> config = resource.start();
        LocalKafkaBroker second = resource.broker();
        Path directory = second.directory();
        ProcessHandle process = second.process();
        try {
            assertEquals(second.bootstrapServers(), config.get("kafka.bootstrap.servers"));
            assertEquals(second.bootstrapServers(), config.get("loraflow.kafka.bootstrap-servers"));
            assertEquals(PlatformUsers.SERVING, config.get("loraflow.kafka.username"));
            assertEquals(second.password(PlatformUsers.SERVING), config.get("loraflow.kafka.password"));
            assertEquals(second.clientSettings(PlatformUsers.PRODUCER),
                    KafkaClientSettings.fromConfig("loraflow.test.kafka.producer", key -> Optional.ofNullable(config.get(key))));
            assertNotEquals(KAFKA.broker().bootstrapServers(), second.bootstrapServers());
            assertNotEquals(KAFKA.broker().directory(), directory);

            // Auto-creation with num.partitions = 5 on the second broker only.
            try (KafkaProducer<String, String> producer = producer(second, Map.of())) {
                producer.send(new ProducerRecord<>("auto-created", "hello")).get(30, TimeUnit.SECONDS);
                assertEquals(5, producer.partitionsFor("auto-created").size());
            }
            try (Admin first = Admin.create(KAFKA.broker().clientProperties(PlatformUsers.ADMIN))) {
                assertFalse(first.listTopics().names().get(10, TimeUnit.SECONDS).contains("auto-created"));
            }
        } finally {
            resource.stop();
        }
        assertFalse(process.isAlive());
        assertFalse(Files.exists(directory));
        assertTrue(KAFKA.broker().process().isAlive());
    }

    @Test
    void badServerPropertyFailsWithTheBrokerLogTail() {
        LocalKafkaBroker.Options options = LocalKafkaBroker.Options.defaults()
                .withServerProperties(Map.of("log.retention.bytes", "lots"));
        BrokerStartException failure = assertThrows(BrokerStartException.class, () -> LocalKafkaBroker.start(options));
        assertTrue(failure.getMessage().contains("log.retention.bytes"), failure.getMessage());
        assertTrue(failure.getMessage().contains("lots"), failure.getMessage());
    }

    @Test
    void childClasspathHoldsTheServerAndNoTestFrameworks() {
        List<String> jars = LocalKafkaBroker.kafkaClasspath().stream()
                .map(entry -> Path.of(entry).getFileName().toString())
                .toList();
        assertTrue(jars.contains("kafka_2.13-4.2.0.jar"), jars.toString());
        assertTrue(jars.stream().anyMatch(jar -> jar.startsWith("kafka-clients-")), jars.toString());
        assertTrue(jars.stream().anyMatch(jar -> jar.startsWith("slf4j-simple-")), jars.toString());
        assertTrue(jars.stream().noneMatch(jar -> jar.startsWith("junit-") || jar.startsWith("quarkus-")),
                jars.toString());
    }

    @Test
    void invalidOptionsAndInitArgsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> LocalKafkaBroker.Options.defaults().withPartitions(0));
        assertThrows(IllegalArgumentException.class,
                () -> LocalKafkaBroker.Options.defaults().withStartTimeout(Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> new KafkaBrokerTestResource().init(Map.of("partitions", "x")));
        assertThrows(IllegalArgumentException.class, () -> new KafkaBrokerTestResource().init(Map.of("topics", "a")));
        assertThrows(IllegalArgumentException.class, () -> new KafkaBrokerTestResource().init(Map.of("partitions", "2")));
        assertThrows(IllegalArgumentException.class, () -> new KafkaBrokerTestResource().init(Map.of("user", "root")));
        assertThrows(IllegalArgumentException.class,
                () -> LocalKafkaBroker.Options.defaults().withPasswords(Map.of("nobody", "0123456789abcdef")));
        assertThrows(IllegalArgumentException.class,
                () -> LocalKafkaBroker.Options.defaults().withPasswords(Map.of(PlatformUsers.PRODUCER, "short")));
        assertThrows(IllegalArgumentException.class,
                () -> LocalKafkaBroker.Options.defaults().withPasswords(Map.of(PlatformUsers.PRODUCER, "quote\"0123456789abcdef")));
        assertThrows(IllegalArgumentException.class, () -> KAFKA.broker().createTopics(0, "none"));
    }

    private static void sendInTransaction(KafkaProducer<String, String> producer, String... values) {
        producer.beginTransaction();
        for (String value : values) {
            producer.send(new ProducerRecord<>("transactions", value));
        }
        producer.commitTransaction();
    }

    private static List<ConsumerRecord<String, String>> pollAtLeast(KafkaConsumer<String, String> consumer, int count) {
        List<ConsumerRecord<String, String>> records = new ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (records.size() < count) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("received " + records.size() + " of " + count + " records: " + records);
            }
            consumer.poll(Duration.ofMillis(200)).forEach(records::add);
        }
        return records;
    }

    @Test
    void eachUserMayDoWhatItsRoleNeedsAndNoMore() throws Exception {
        LocalKafkaBroker broker = KAFKA.broker();
        broker.createTopics(1, PlatformUsers.JOBS, PlatformUsers.BATCHES, PlatformUsers.CHECKPOINTS,
                PlatformUsers.MODELS_MERGED);
        // The producer publishes batches and jobs; serving writes nowhere; the merger announces models.
        assertSent(broker.clientProperties(PlatformUsers.PRODUCER), PlatformUsers.BATCHES);
        assertSent(broker.clientProperties(PlatformUsers.PRODUCER), PlatformUsers.JOBS);
        assertSent(broker.clientProperties(PlatformUsers.MERGER), PlatformUsers.MODELS_MERGED);
        assertRefused(broker.clientProperties(PlatformUsers.SERVING), PlatformUsers.CHECKPOINTS,
                TopicAuthorizationException.class);
        assertRefused(broker.clientProperties(PlatformUsers.SERVING), PlatformUsers.JOBS, TopicAuthorizationException.class);
        assertRefused(broker.clientProperties(PlatformUsers.PRODUCER), PlatformUsers.MODELS_MERGED,
                TopicAuthorizationException.class);
        assertRefused(broker.clientProperties(PlatformUsers.TRAINER), PlatformUsers.MODELS_MERGED,
                TopicAuthorizationException.class);
        // Without credentials, or with a wrong password, nobody gets in.
        Properties anonymous = new Properties();
        anonymous.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers());
        assertRefused(anonymous, PlatformUsers.MODELS_MERGED, KafkaException.class);
        Properties wrongPassword = KafkaClientSettings.scram(broker.bootstrapServers(), PlatformUsers.MERGER,
                "not-the-password-0123").properties();
        assertRefused(wrongPassword, PlatformUsers.MODELS_MERGED, SaslAuthenticationException.class);
        // PLAIN, for kcat's older librdkafka, is the data producer's alone.
        assertSent(plain(broker, PlatformUsers.PRODUCER), PlatformUsers.BATCHES);
        assertRefused(plain(broker, PlatformUsers.MERGER), PlatformUsers.MODELS_MERGED, SaslAuthenticationException.class);
        // Serving reads merged models but not batches.
        try (KafkaConsumer<String, String> consumer = consumer(broker, PlatformUsers.SERVING, Map.of())) {
            TopicPartition merged = new TopicPartition(PlatformUsers.MODELS_MERGED, 0);
            consumer.assign(List.of(merged));
            consumer.seekToBeginning(List.of(merged));
            assertEquals("sent by merger", pollAtLeast(consumer, 1).getFirst().value());
            TopicPartition batches = new TopicPartition(PlatformUsers.BATCHES, 0);
            consumer.assign(List.of(batches));
            consumer.seekToBeginning(List.of(batches));
            assertThrows(TopicAuthorizationException.class, () -> pollAtLeast(consumer, 1));
        }
    }

    private static Properties plain(LocalKafkaBroker broker, String user) {
        return new KafkaClientSettings(broker.bootstrapServers(), "SASL_PLAINTEXT", "PLAIN", user, broker.password(user))
                .properties();
    }

    private static void assertSent(Properties client, String topic) throws Exception {
        try (KafkaProducer<String, String> producer = producer(client, Map.of())) {
            producer.send(new ProducerRecord<>(topic, "sent by " + client.getProperty("sasl.jaas.config")
                    .replaceAll(".*username=\"([^\"]*)\".*", "$1"))).get(30, TimeUnit.SECONDS);
        }
    }

    private static void assertRefused(Properties client, String topic, Class<? extends Exception> expected) {
        // Without idempotence no producer id is asked for first: the write itself is what gets refused.
        Map<String, Object> quick = Map.of(ProducerConfig.MAX_BLOCK_MS_CONFIG, 10_000,
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        try (KafkaProducer<String, String> producer = producer(client, quick)) {
            Exception failure = assertThrows(Exception.class,
                    () -> producer.send(new ProducerRecord<>(topic, "forged")).get(30, TimeUnit.SECONDS));
            Throwable cause = failure instanceof ExecutionException ? failure.getCause() : failure;
            assertTrue(expected.isInstance(cause), "expected " + expected.getSimpleName() + ", got " + cause);
        }
    }

    private static KafkaProducer<String, String> producer(LocalKafkaBroker broker, Map<String, Object> extra) {
        return producer(broker.clientProperties(PlatformUsers.ADMIN), extra);
    }

    private static KafkaProducer<String, String> producer(Properties client, Map<String, Object> extra) {
        Map<String, Object> config = new HashMap<>(extra);
        client.forEach((key, value) -> config.put((String) key, value));
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        return new KafkaProducer<>(config);
    }

    private static KafkaConsumer<String, String> consumer(LocalKafkaBroker broker, Map<String, Object> extra) {
        return consumer(broker, PlatformUsers.ADMIN, extra);
    }

    private static KafkaConsumer<String, String> consumer(LocalKafkaBroker broker, String user, Map<String, Object> extra) {
        Map<String, Object> config = new HashMap<>(extra);
        broker.clientProperties(user).forEach((key, value) -> config.put((String) key, value));
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        return new KafkaConsumer<>(config);
    }
}
