package dev.loraflow.broker;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.util.Map;

/**
 * A local Kafka broker for {@code @QuarkusTest}s, pointed to by {@code kafka.bootstrap.servers}
 * and the SmallRye Kafka connector's {@code bootstrap.servers}:
 *
 * <pre>
 * &#64;QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = &#64;ResourceArg(name = "partitions", value = "8"))
 * </pre>
 *
 * The service's application.properties must turn Quarkus's Kafka Dev Services off
 * ({@code %test.quarkus.kafka.devservices.enabled=false}): they would start a Docker container.
 * Init args: {@code partitions} (default 4), {@code auto-create-topics} (default false).
 */
public final class KafkaBrokerTestResource implements QuarkusTestResourceLifecycleManager {

    private LocalKafkaBroker.Options options = LocalKafkaBroker.Options.defaults();
    private LocalKafkaBroker broker;

    @Override
    public void init(Map<String, String> initArgs) {
        for (Map.Entry<String, String> arg : initArgs.entrySet()) {
            options = switch (arg.getKey()) {
                case "partitions" -> options.withPartitions(parsePartitions(arg.getValue()));
                case "auto-create-topics" -> options.withAutoCreateTopics(parseBoolean(arg.getValue()));
                default -> throw new IllegalArgumentException("KafkaBrokerTestResource: unknown init arg '"
                        + arg.getKey() + "'; known: partitions, auto-create-topics");
            };
        }
    }

    @Override
    public Map<String, String> start() {
        broker = LocalKafkaBroker.start(options);
        String bootstrapServers = broker.bootstrapServers();
        return Map.of(
                "kafka.bootstrap.servers", bootstrapServers,
                "mp.messaging.connector.smallrye-kafka.bootstrap.servers", bootstrapServers);
    }

    @Override
    public void stop() {
        if (broker != null) {
            broker.close();
        }
    }

    /** The running broker, e.g. to create topics from a test. */
    public LocalKafkaBroker broker() {
        return broker;
    }

    private static int parsePartitions(String value) {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("KafkaBrokerTestResource: partitions must be a number, got '" + value + "'");
        }
    }

    private static boolean parseBoolean(String value) {
        return switch (value) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new IllegalArgumentException(
                    "KafkaBrokerTestResource: auto-create-topics must be true or false, got '" + value + "'");
        };
    }
}
