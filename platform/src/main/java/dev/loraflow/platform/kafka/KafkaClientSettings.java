package dev.loraflow.platform.kafka;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.function.Function;

/**
 * Where a Kafka client connects and who it is: the bootstrap servers and, unless the protocol is
 * {@code PLAINTEXT}, the SASL mechanism and the user's name and password. Every client of a service
 * (consumers, producers, the admin client that creates topics) is made from one of these.
 *
 * @param securityProtocol {@code SASL_PLAINTEXT} (the default), {@code SASL_SSL} or {@code PLAINTEXT}
 * @param saslMechanism    {@code SCRAM-SHA-512} (the default), {@code SCRAM-SHA-256} or {@code PLAIN}
 */
public record KafkaClientSettings(String bootstrapServers, String securityProtocol, String saslMechanism,
                                  String username, String password) {

    /** The configuration keys under a prefix such as {@code loraflow.kafka}. */
    public static final String BOOTSTRAP_SERVERS = "bootstrap-servers";
    public static final String SECURITY_PROTOCOL = "security-protocol";
    public static final String SASL_MECHANISM = "sasl-mechanism";
    public static final String USERNAME = "username";
    public static final String PASSWORD = "password";
    /** A file holding the password (a mounted Secret), read when {@link #PASSWORD} is not set. */
    public static final String PASSWORD_FILE = "password-file";

    public static final String DEFAULT_PROTOCOL = "SASL_PLAINTEXT";
    public static final String DEFAULT_MECHANISM = "SCRAM-SHA-512";

    private static final Set<String> PROTOCOLS = Set.of("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL");
    private static final Set<String> MECHANISMS = Set.of("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN");

    public KafkaClientSettings {
        if (bootstrapServers == null || bootstrapServers.isBlank()) {
            throw new IllegalArgumentException("the Kafka bootstrap servers are not set");
        }
        if (!PROTOCOLS.contains(securityProtocol)) {
            throw new IllegalArgumentException("Kafka security protocol '" + securityProtocol + "' is not one of "
                    + PROTOCOLS);
        }
        if (authenticates(securityProtocol)) {
            if (!MECHANISMS.contains(saslMechanism)) {
                throw new IllegalArgumentException("Kafka SASL mechanism '" + saslMechanism + "' is not one of " + MECHANISMS);
            }
            if (username == null || username.isBlank() || password == null || password.isEmpty()) {
                throw new IllegalArgumentException("Kafka security protocol " + securityProtocol
                        + " needs a user name and a password (the Kafka broker requires authentication)");
            }
        }
    }

    /** A user of a broker that authenticates with the default protocol and mechanism. */
    public static KafkaClientSettings scram(String bootstrapServers, String username, String password) {
        return new KafkaClientSettings(bootstrapServers, DEFAULT_PROTOCOL, DEFAULT_MECHANISM, username, password);
    }

    /**
     * Reads {@code <prefix>.bootstrap-servers}, {@code .security-protocol}, {@code .sasl-mechanism},
     * {@code .username} and {@code .password} (or {@code .password-file}, a file whose content is the
     * password, trailing line break dropped: a Kubernetes Secret mounted as a file) from a configuration
     * (for a Quarkus service: {@code key -> config.getOptionalValue(key, String.class)}, so
     * {@code LORAFLOW_KAFKA_PASSWORD} sets {@code loraflow.kafka.password}).
     *
     * @throws IllegalArgumentException naming what is missing or wrong
     */
    public static KafkaClientSettings fromConfig(String prefix, Function<String, Optional<String>> config) {
        Function<String, Optional<String>> value = key -> config.apply(prefix + "." + key).filter(text -> !text.isBlank());
        return new KafkaClientSettings(
                value.apply(BOOTSTRAP_SERVERS).orElseThrow(() -> new IllegalArgumentException(
                        prefix + "." + BOOTSTRAP_SERVERS + " is not set")),
                value.apply(SECURITY_PROTOCOL).map(text -> text.toUpperCase(Locale.ROOT)).orElse(DEFAULT_PROTOCOL),
                value.apply(SASL_MECHANISM).map(text -> text.toUpperCase(Locale.ROOT)).orElse(DEFAULT_MECHANISM),
                value.apply(USERNAME).orElse(null),
                value.apply(PASSWORD).or(() -> value.apply(PASSWORD_FILE).map(file -> readPassword(prefix, file)))
                        .orElse(null));
    }

    private static String readPassword(String prefix, String file) {
        try {
            return Files.readString(Path.of(file), StandardCharsets.UTF_8).stripTrailing();
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException(prefix + "." + PASSWORD_FILE + " " + file + " cannot be read: " + e, e);
        }
    }

    /** The client properties: bootstrap.servers, security.protocol and, with SASL, sasl.mechanism and sasl.jaas.config. */
    public Properties properties() {
        Properties properties = new Properties();
        properties.setProperty("bootstrap.servers", bootstrapServers);
        properties.setProperty("security.protocol", securityProtocol);
        if (authenticates(securityProtocol)) {
            properties.setProperty("sasl.mechanism", saslMechanism);
            properties.setProperty("sasl.jaas.config", jaasConfig(saslMechanism, username, password));
        }
        return properties;
    }

    /** The same settings as another user, e.g. a test's producer beside the service's own user. */
    public KafkaClientSettings as(String otherUsername, String otherPassword) {
        return new KafkaClientSettings(bootstrapServers, securityProtocol, saslMechanism, otherUsername, otherPassword);
    }

    /**
     * The JAAS line of a SCRAM or PLAIN login; quotes and backslashes in the name or password are escaped,
     * as the JAAS parser reads quoted strings.
     */
    public static String jaasConfig(String mechanism, String username, String password) {
        String module = mechanism.equals("PLAIN") ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        return module + " required username=\"" + quoted(username) + "\" password=\"" + quoted(password) + "\";";
    }

    /** The user and the protocol, never the password: safe to log. */
    @Override
    public String toString() {
        return bootstrapServers + " (" + securityProtocol + (authenticates(securityProtocol) ? " " + saslMechanism
                + " as " + username : "") + ")";
    }

    private static boolean authenticates(String protocol) {
        return protocol.startsWith("SASL_");
    }

    private static String quoted(String text) {
        return text.replace("\\", "\\\\").replace("\"", "\\\"");
    }
}
