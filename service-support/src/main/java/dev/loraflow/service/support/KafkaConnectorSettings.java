package dev.loraflow.service.support;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import io.smallrye.common.annotation.Identifier;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Produces;
import java.util.HashMap;
import java.util.Map;
import org.eclipse.microprofile.config.Config;

/**
 * Where and as whom the SmallRye Kafka connector's clients connect: the same {@code loraflow.kafka.*}
 * settings (bootstrap servers, SASL/SCRAM, user, password or password file) that platform's
 * {@link KafkaClientSettings} reads for the services' own clients, so a channel and a hand-made client of
 * one service always sign in as the same user. A service using the connector names this bean once:
 * {@code mp.messaging.connector.smallrye-kafka.kafka-configuration=loraflow-kafka}; a channel's own
 * attributes still override it.
 */
@ApplicationScoped
public class KafkaConnectorSettings {

    /** The bean's identifier, as {@code kafka-configuration} names it. */
    public static final String IDENTIFIER = "loraflow-kafka";
    /** The configuration prefix every service reads its Kafka user from. */
    public static final String PREFIX = "loraflow.kafka";

    /** The service's Kafka user, read from its configuration (a missing password fails here, naming the key). */
    public static KafkaClientSettings of(Config config) {
        return KafkaClientSettings.fromConfig(PREFIX, key -> config.getOptionalValue(key, String.class));
    }

    @Produces
    @ApplicationScoped
    @Identifier(IDENTIFIER)
    Map<String, Object> connectorConfiguration(Config config) {
        Map<String, Object> properties = new HashMap<>();
        of(config).properties().forEach((key, value) -> properties.put((String) key, value));
        return properties;
    }
}
