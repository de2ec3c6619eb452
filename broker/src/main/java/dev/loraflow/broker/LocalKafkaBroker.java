package dev.loraflow.broker;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.process.ChildJvm;
import dev.loraflow.process.ChildJvms;
import java.io.File;
import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.Uuid;

/**
 * A real Apache Kafka broker in KRaft mode (broker and controller in one node) running as a child
 * JVM on free 127.0.0.1 ports, with its configuration, data and log in a fresh temporary
 * directory. {@link #close()} stops it and deletes the directory; a shutdown hook does the same
 * when the owner forgets ({@link ChildJvm}).
 *
 * <p>As in production, the broker authenticates every client (SASL/SCRAM-SHA-512 over SASL_PLAINTEXT)
 * and authorizes it with StandardAuthorizer: each of the {@link PlatformUsers} gets its ACLs, and
 * nothing else is allowed. {@link #clientSettings(String)} says how to sign in as one of them.
 *
 * <p>The child runs from the Kafka jars that the Maven build resolved: their paths are in the
 * {@code kafka-classpath.txt} resource written by this module's build.
 */
public final class LocalKafkaBroker implements AutoCloseable {

    /** How the broker is configured and how long {@link #start} waits for it. */
    public record Options(
            int partitions,
            boolean autoCreateTopics,
            Duration startTimeout,
            Map<String, String> serverProperties,
            Map<String, String> passwords) {

        public Options {
            if (partitions < 1) {
                throw new IllegalArgumentException("partitions must be at least 1, got " + partitions);
            }
            if (startTimeout.isNegative() || startTimeout.isZero()) {
                throw new IllegalArgumentException("startTimeout must be positive, got " + startTimeout);
            }
            serverProperties = Map.copyOf(serverProperties);
            passwords = Map.copyOf(passwords);
            for (Map.Entry<String, String> password : passwords.entrySet()) {
                if (!PlatformUsers.ALL.contains(password.getKey())) {
                    throw new IllegalArgumentException("no Kafka user '" + password.getKey() + "'; the users are "
                            + PlatformUsers.ALL);
                }
                if (!PASSWORD.matcher(password.getValue()).matches()) {
                    throw new IllegalArgumentException("the password of Kafka user " + password.getKey()
                            + " must be 16-128 of [A-Za-z0-9_-]");
                }
            }
        }

        /** Four partitions per new topic, no topic auto-creation, 60 s to start. */
        public static Options defaults() {
            return new Options(4, false, Duration.ofSeconds(60), Map.of(), Map.of());
        }

        public Options withPartitions(int partitions) {
            return new Options(partitions, autoCreateTopics, startTimeout, serverProperties, passwords);
        }

        public Options withAutoCreateTopics(boolean autoCreateTopics) {
            return new Options(partitions, autoCreateTopics, startTimeout, serverProperties, passwords);
        }

        public Options withStartTimeout(Duration startTimeout) {
            return new Options(partitions, autoCreateTopics, startTimeout, serverProperties, passwords);
        }

        /**
         * Passwords of some of the {@link PlatformUsers} (e.g. chosen by {@code ./loraflow up}); the others get
         * random ones.
         */
        public Options withPasswords(Map<String, String> passwords) {
            return new Options(partitions, autoCreateTopics, startTimeout, serverProperties, passwords);
        }

        /** Extra server.properties entries; they override the ones this class writes. */
        public Options withServerProperties(Map<String, String> serverProperties) {
            return new Options(partitions, autoCreateTopics, startTimeout, serverProperties, passwords);
        }
    }

    // Letters, digits, '-' and '_': safe in a JAAS line, a properties file, a shell variable and kafka-storage's --add-scram.
    private static final Pattern PASSWORD = Pattern.compile("[A-Za-z0-9_-]{16,128}");
    private static final String MECHANISM = "SCRAM-SHA-512";
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final String CLASSPATH_RESOURCE = "kafka-classpath.txt";
    // A small heap and the serial collector keep a test broker near 400 MB resident.
    private static final ChildJvms KAFKA = new ChildJvms("Kafka broker", "loraflow-kafka-", "broker.log", List.of(
            "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            "--enable-native-access=ALL-UNNAMED",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"), BrokerStartException::new);
    private static final Duration FORMAT_TIMEOUT = Duration.ofSeconds(60);

    private final ChildJvm child;
    private final int brokerPort;
    private final Map<String, String> passwords;
    private final Duration startTimeout;

    private LocalKafkaBroker(ChildJvm child, int brokerPort, Map<String, String> passwords, Duration startTimeout) {
        this.child = child;
        this.brokerPort = brokerPort;
        this.passwords = passwords;
        this.startTimeout = startTimeout;
    }

    /** Starts a broker with {@link Options#defaults()}. */
    public static LocalKafkaBroker start() {
        return start(Options.defaults());
    }

    /**
     * Formats fresh storage, starts the broker and returns once it answers a cluster description.
     *
     * @throws BrokerStartException when the broker fails or is not ready within the start timeout;
     *     the message carries the tail of its log, as the directory is deleted
     */
    public static LocalKafkaBroker start(Options options) {
        List<String> classpath = kafkaClasspath();
        return KAFKA.start(workspace -> {
            int[] ports = KAFKA.freePorts(2);
            Map<String, String> passwords = new LinkedHashMap<>();
            for (String user : PlatformUsers.ALL) {
                passwords.put(user, options.passwords().getOrDefault(user, randomPassword()));
            }
            Path serverProperties = workspace.directory().resolve("server.properties");
            writeServerProperties(serverProperties, workspace.directory().resolve("data"), ports[0], ports[1], options,
                    passwords);
            workspace.run(formatArguments(classpath, serverProperties, passwords), "Kafka storage format", FORMAT_TIMEOUT);
            ChildJvm child = workspace.launch(List.of("-cp", String.join(File.pathSeparator, classpath), "kafka.Kafka",
                    serverProperties.toString()));
            LocalKafkaBroker broker = new LocalKafkaBroker(child, ports[0], Map.copyOf(passwords), options.startTimeout());
            broker.awaitReady();
            broker.grantPlatformAcls();
            return broker;
        });
    }

    /** {@code host:port} of the SASL_PLAINTEXT listener, for {@code bootstrap.servers}. */
    public String bootstrapServers() {
        return "127.0.0.1:" + brokerPort;
    }

    /** The password of one of the {@link PlatformUsers}. */
    public String password(String user) {
        String password = passwords.get(user);
        if (password == null) {
            throw new IllegalArgumentException("no Kafka user '" + user + "'; the users are " + PlatformUsers.ALL);
        }
        return password;
    }

    /** How a client connects as {@code user} (SCRAM-SHA-512 over SASL_PLAINTEXT). */
    public KafkaClientSettings clientSettings(String user) {
        return KafkaClientSettings.scram(bootstrapServers(), user, password(user));
    }

    /** {@link #clientSettings} as client properties, for {@code new KafkaProducer<>(properties)} and the like. */
    public Properties clientProperties(String user) {
        return clientSettings(user).properties();
    }

    /**
     * What a loraflow service running as {@code user} is configured with: {@code loraflow.kafka.*} (its own
     * client settings), {@code kafka.bootstrap.servers}, and for a test beside it {@code loraflow.test.kafka.<user>.*}
     * of every user (read with {@code KafkaClientSettings.fromConfig("loraflow.test.kafka.producer", ...)}).
     */
    public Map<String, String> serviceConfig(String user) {
        Map<String, String> config = new HashMap<>();
        putClientConfig(config, "loraflow.kafka", clientSettings(user));
        for (String each : PlatformUsers.ALL) {
            putClientConfig(config, "loraflow.test.kafka." + each, clientSettings(each));
        }
        config.put("kafka.bootstrap.servers", bootstrapServers());
        return config;
    }

    private static void putClientConfig(Map<String, String> config, String prefix, KafkaClientSettings settings) {
        config.put(prefix + "." + KafkaClientSettings.BOOTSTRAP_SERVERS, settings.bootstrapServers());
        config.put(prefix + "." + KafkaClientSettings.SECURITY_PROTOCOL, settings.securityProtocol());
        config.put(prefix + "." + KafkaClientSettings.SASL_MECHANISM, settings.saslMechanism());
        config.put(prefix + "." + KafkaClientSettings.USERNAME, settings.username());
        config.put(prefix + "." + KafkaClientSettings.PASSWORD, settings.password());
    }

    /** The temporary directory holding server.properties, the data and the log. */
    public Path directory() {
        return child.directory();
    }

    /** Everything the broker JVM wrote to stdout and stderr. */
    public Path logFile() {
        return child.logFile();
    }

    /** The broker JVM, e.g. to measure it or wait for it. */
    public ProcessHandle process() {
        return child.process();
    }

    /** The broker's child JVM. */
    ChildJvm child() {
        return child;
    }

    /** Creates topics with {@code partitions} partitions each (replication factor 1) and waits for them. */
    public void createTopics(int partitions, String... names) {
        if (partitions < 1) {
            throw new IllegalArgumentException("partitions must be at least 1, got " + partitions);
        }
        List<NewTopic> topics = Arrays.stream(names).map(name -> new NewTopic(name, partitions, (short) 1)).toList();
        try (Admin admin = Admin.create(clientProperties(PlatformUsers.ADMIN))) {
            admin.createTopics(topics).all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("could not create topics " + Arrays.toString(names)
                    + " on " + bootstrapServers() + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while creating topics " + Arrays.toString(names), e);
        }
    }

    /**
     * Stops the broker as an outage would (SIGTERM, then a forced kill after 20 s), keeping its data and
     * ports for {@link #restart()}: clients meanwhile find nobody listening.
     */
    public void stop() {
        child.stop();
    }

    /** Starts a {@link #stop() stopped} broker again on its ports and data; returns once it answers. */
    public void restart() {
        child.restart();
        awaitReady();
    }

    /** Stops the broker (SIGTERM, then a forced kill after 20 s) and deletes its directory. */
    @Override
    public void close() {
        child.close();
    }

    /** Lets each platform user do what {@link PlatformUsers#RIGHTS} says, and nothing else. */
    private void grantPlatformAcls() {
        try (Admin admin = Admin.create(clientProperties(PlatformUsers.ADMIN))) {
            admin.createAcls(PlatformUsers.acls()).all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException | TimeoutException e) {
            throw new BrokerStartException("could not create the platform's ACLs on " + bootstrapServers() + ": "
                    + e.getMessage() + "; the broker log ends with:\n" + child.logTail(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new BrokerStartException("interrupted while creating the platform's ACLs", e);
        }
    }

    private static String randomPassword() {
        byte[] bytes = new byte[24];
        RANDOM.nextBytes(bytes);
        return HexFormat.of().formatHex(bytes);
    }

    /**
     * Clients authenticate with SCRAM-SHA-512 on the CLIENTS listener, which is also the inter-broker one
     * (the broker as {@code admin}); the controller listener takes PLAIN from {@code admin} alone, as its
     * users cannot come from the metadata it serves. StandardAuthorizer: no ACL, no access; {@code admin}
     * is the only super user.
     *
     * <p>The data producer may also sign in with PLAIN on the CLIENTS listener: librdkafka before 2.6.1
     * (kcat 1.7 of Debian 12 and Ubuntu 24.04) sends a SCRAM nonce that Kafka 4 rejects, and PLAIN is
     * what every kcat can do. Its password then crosses the loopback interface in clear, which is where
     * this broker listens; the services and the other users sign in with SCRAM only.
     */
    private static void writeServerProperties(Path file, Path dataDirectory, int brokerPort, int controllerPort,
            Options options, Map<String, String> passwords) {
        String adminPassword = passwords.get(PlatformUsers.ADMIN);
        Properties properties = new Properties();
        properties.setProperty("process.roles", "broker,controller");
        properties.setProperty("node.id", "1");
        properties.setProperty("controller.quorum.bootstrap.servers", "127.0.0.1:" + controllerPort);
        properties.setProperty("listeners",
                "CLIENTS://127.0.0.1:" + brokerPort + ",CONTROLLER://127.0.0.1:" + controllerPort);
        properties.setProperty("advertised.listeners",
                "CLIENTS://127.0.0.1:" + brokerPort + ",CONTROLLER://127.0.0.1:" + controllerPort);
        properties.setProperty("controller.listener.names", "CONTROLLER");
        properties.setProperty("inter.broker.listener.name", "CLIENTS");
        properties.setProperty("listener.security.protocol.map", "CONTROLLER:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT");
        properties.setProperty("sasl.mechanism.inter.broker.protocol", MECHANISM);
        properties.setProperty("sasl.mechanism.controller.protocol", "PLAIN");
        properties.setProperty("listener.name.clients.sasl.enabled.mechanisms", MECHANISM + ",PLAIN");
        properties.setProperty("listener.name.clients.scram-sha-512.sasl.jaas.config",
                KafkaClientSettings.jaasConfig(MECHANISM, PlatformUsers.ADMIN, adminPassword));
        properties.setProperty("listener.name.clients.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_" + PlatformUsers.PRODUCER
                        + "=\"" + passwords.get(PlatformUsers.PRODUCER) + "\";");
        properties.setProperty("listener.name.controller.sasl.enabled.mechanisms", "PLAIN");
        properties.setProperty("listener.name.controller.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"" + PlatformUsers.ADMIN
                        + "\" password=\"" + adminPassword + "\" user_" + PlatformUsers.ADMIN + "=\"" + adminPassword + "\";");
        properties.setProperty("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer");
        properties.setProperty("super.users", "User:" + PlatformUsers.ADMIN);
        properties.setProperty("allow.everyone.if.no.acl.found", "false");
        properties.setProperty("log.dirs", dataDirectory.toString());
        properties.setProperty("num.partitions", Integer.toString(options.partitions()));
        properties.setProperty("auto.create.topics.enable", Boolean.toString(options.autoCreateTopics()));
        // One node: every internal topic has a single replica.
        properties.setProperty("offsets.topic.replication.factor", "1");
        properties.setProperty("transaction.state.log.replication.factor", "1");
        properties.setProperty("transaction.state.log.min.isr", "1");
        properties.setProperty("share.coordinator.state.topic.replication.factor", "1");
        properties.setProperty("share.coordinator.state.topic.min.isr", "1");
        // The default 50 partitions of the internal topics cost seconds on the first group join
        // and the first transaction; one broker gains nothing from them.
        properties.setProperty("offsets.topic.num.partitions", "1");
        properties.setProperty("transaction.state.log.num.partitions", "1");
        // No other consumer is coming to join a group; don't wait 3 s for one.
        properties.setProperty("group.initial.rebalance.delay.ms", "0");
        options.serverProperties().forEach(properties::setProperty);
        try (Writer writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            properties.store(writer, "loraflow local Kafka broker");
        } catch (IOException e) {
            throw new BrokerStartException("could not write " + file + ": " + e.getMessage(), e);
        }
    }

    /** Formats the storage with every user's SCRAM credential, so that the broker authenticates from its first start. */
    private static List<String> formatArguments(List<String> classpath, Path serverProperties, Map<String, String> passwords) {
        String clusterId = Uuid.randomUuid().toString();
        List<String> arguments = new ArrayList<>(List.of("-cp", String.join(File.pathSeparator, classpath),
                "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", serverProperties.toString(), "--standalone"));
        passwords.forEach((user, password) -> {
            arguments.add("--add-scram");
            arguments.add(MECHANISM + "=[name=" + user + ",password=" + password + "]");
        });
        return arguments;
    }

    /** The Kafka jars the broker module's build resolved, for the child's classpath. */
    static List<String> kafkaClasspath() {
        return KAFKA.buildClasspath(LocalKafkaBroker.class, CLASSPATH_RESOURCE, "broker");
    }

    /** Returns once the listener accepts connections and the node has joined its own cluster. */
    private void awaitReady() {
        Properties config = clientProperties(PlatformUsers.ADMIN);
        config.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, 50);
        try (ClusterProbe probe = new ClusterProbe(brokerPort, config)) {
            KAFKA.awaitReady(child, startTimeout, probe::ready);
        }
    }

    /** Asks for the cluster's nodes once the port accepts; its admin client is made then, and closed after. */
    private static final class ClusterProbe implements AutoCloseable {

        private final int port;
        private final Properties adminClient;
        private Admin admin;

        ClusterProbe(int port, Properties adminClient) {
            this.port = port;
            this.adminClient = adminClient;
        }

        boolean ready() throws InterruptedException {
            if (admin == null) {
                if (!ChildJvms.accepts(port)) {
                    return false;
                }
                admin = Admin.create(adminClient);
            }
            try {
                return !admin.describeCluster().nodes().get(1, TimeUnit.SECONDS).isEmpty();
            } catch (ExecutionException | TimeoutException notYet) {
                // The listener is open but the node has not joined its own cluster yet.
                return false;
            }
        }

        @Override
        public void close() {
            if (admin != null) {
                admin.close();
            }
        }
    }

}
