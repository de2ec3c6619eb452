package dev.loraflow.broker;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.util.Map;

/**
 * A local Kafka broker for {@code @QuarkusTest}s, with authentication and the platform's ACLs on. The
 * service runs as the Kafka user named by the {@code user} init arg (one of {@link PlatformUsers#ALL}):
 * its {@code loraflow.kafka.*} settings (bootstrap servers, SASL, user, password) and
 * {@code kafka.bootstrap.servers} point to the broker, and the test finds every user's settings under
 * {@code loraflow.test.kafka.<user>.*} ({@link LocalKafkaBroker#serviceConfig}):
 *
 * <pre>
 * &#64;QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = {
 *         &#64;ResourceArg(name = "user", value = PlatformUsers.TRAINER), &#64;ResourceArg(name = "partitions", value = "8")})
 * ...
 * KafkaClientSettings producer = KafkaClientSettings.fromConfig("loraflow.test.kafka.producer",
 *         key -> ConfigProvider.getConfig().getOptionalValue(key, String.class));
 * </pre>
 *
 * The service's application.properties must turn Quarkus's Kafka Dev Services off
 * ({@code %test.quarkus.kafka.devservices.enabled=false}): they would start a Docker container.
 * Init args: {@code user} (required), {@code partitions} (default 4), {@code auto-create-topics} (default false).
 */
public final class KafkaBrokerTestResource implements QuarkusTestResourceLifecycleManager {

    private LocalKafkaBroker.Options options = LocalKafkaBroker.Options.defaults();
    private String user;
    private LocalKafkaBroker broker;

    @Override
    public void init(Map<String, String> initArgs) {
        for (Map.Entry<String, String> arg : initArgs.entrySet()) {
            options = switch (arg.getKey()) {
                case "partitions" -> options.withPartitions(parsePartitions(arg.getValue()));
                case "auto-create-topics" -> options.withAutoCreateTopics(parseBoolean(arg.getValue()));
                case "user" -> {
                    user = parseUser(arg.getValue());
                    yield options;
                }
                default -> throw new IllegalArgumentException("KafkaBrokerTestResource: unknown init arg '"
                        + arg.getKey() + "'; known: user, partitions, auto-create-topics");
            };
        }
        if (user == null) {
            throw new IllegalArgumentException("KafkaBrokerTestResource: init arg 'user' names the Kafka user the service"
                    + " runs as, one of " + PlatformUsers.ALL);
        }
    }

    @Override
    public Map<String, String> start() {
        broker = LocalKafkaBroker.start(options);
        return broker.serviceConfig(user);
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

    private static String parseUser(String value) {
        if (!PlatformUsers.ALL.contains(value)) {
            throw new IllegalArgumentException("KafkaBrokerTestResource: user must be one of " + PlatformUsers.ALL
                    + ", got '" + value + "'");
        }
        return value;
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
