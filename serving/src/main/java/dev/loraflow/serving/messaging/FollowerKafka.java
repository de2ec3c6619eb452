package dev.loraflow.serving.messaging;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.reliability.Backoff;
import dev.loraflow.serving.service.ServingConfig;
import dev.loraflow.service.support.KafkaConnectorSettings;
import io.smallrye.common.annotation.Identifier;
import io.smallrye.reactive.messaging.kafka.KafkaConsumerRebalanceListener;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Inject;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.eclipse.microprofile.config.Config;
import org.jboss.logging.Logger;

/**
 * What the Kafka connector's channels of {@link EventFollower} are given: the client settings platform's
 * {@link KafkaClientSettings} reads ({@code loraflow.kafka.*}: SASL/SCRAM, the password or its file), a consumer
 * group of this replica's own ({@code loraflow-serving-<random>}, which the serving user's ACL allows by prefix:
 * every replica reads every event, and nothing is committed), and the rebalance listener that marks where the
 * start-up history ends.
 */
@ApplicationScoped
public class FollowerKafka {

    static final String CONFIGURATION = "loraflow-serving-kafka";
    static final String HISTORY = "loraflow-serving-history";
    /** The prefix of the replicas' groups: the serving user's group ACL (broker PlatformUsers, users.yaml). */
    public static final String GROUP_PREFIX = "loraflow-serving-";

    private static final Logger LOG = Logger.getLogger(FollowerKafka.class);

    @Inject
    Config config;
    @Inject
    FollowerConfig.Topics topicsConfig;
    @Inject
    ServingConfig settings;
    @Inject
    EventFollower events;

    private final String group = GROUP_PREFIX + UUID.randomUUID();

    /** Kafka client settings of both channels (the channel's own mp.messaging.* keys add to them). */
    @Produces
    @Identifier(CONFIGURATION)
    Map<String, Object> configuration() {
        KafkaClientSettings kafka = KafkaConnectorSettings.of(config);
        Thread.ofVirtual().name("loraflow-serving-topics").start(() -> createTopics(kafka));
        Map<String, Object> settings = new HashMap<>();
        kafka.properties().forEach((key, value) -> settings.put(key.toString(), value));
        settings.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        // A followed topic created after the subscription is seen within seconds, not the default 5 minutes.
        settings.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, 5000);
        return settings;
    }

    /** Creates the followed topics when serving starts before the merger and trainer, retrying until the broker answers. */
    private void createTopics(KafkaClientSettings kafka) {
        Map<String, Integer> topics = new LinkedHashMap<>();
        if (settings.followModels()) {
            topics.put(topicsConfig.modelsMerged(), topicsConfig.partitions());
        }
        if (settings.followAdapters()) {
            topics.put(topicsConfig.checkpoints(), topicsConfig.partitions());
        }
        Backoff backoff = Backoff.standard();
        while (true) {
            try {
                KafkaSetup.ensureTopics(kafka, topics);
                return;
            } catch (RuntimeException e) {
                LOG.warnf("waiting for Kafka at %s to create %s: %s", kafka, topics.keySet(), e.getMessage());
                backoff.sleepAfterFailure();
            }
        }
    }

    /** Tells the follower where each topic's start-up history ends. */
    @Produces
    @Identifier(HISTORY)
    KafkaConsumerRebalanceListener history() {
        return new KafkaConsumerRebalanceListener() {
            @Override
            public void onPartitionsAssigned(Consumer<?, ?> consumer, Collection<TopicPartition> partitions) {
                events.assigned(consumer, partitions);
            }
        };
    }
}
