package dev.loraflow.broker;

import dev.loraflow.process.ForegroundMain;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Runs a local Kafka broker until this JVM is stopped (SIGTERM or Ctrl-C), for {@code ./loraflow up}:
 * prints {@code bootstrap.servers=host:port} on stdout once the broker is ready. Authentication and the
 * platform's ACLs are on ({@link PlatformUsers}); the password of user {@code U} is taken from the
 * environment variable {@code LORAFLOW_KAFKA_PASSWORD_U} (upper case, e.g. {@code LORAFLOW_KAFKA_PASSWORD_PRODUCER}),
 * random when unset. Passwords are never printed.
 *
 * <pre>java -jar broker/target/loraflow-broker.jar [--partitions N] [--auto-create-topics]</pre>
 *
 * Exit codes: 1 the broker failed, 2 wrong arguments; stopped by a signal, 143 (SIGTERM) or 130 (Ctrl-C).
 */
public final class BrokerMain {

    static final String PASSWORD_VARIABLE_PREFIX = "LORAFLOW_KAFKA_PASSWORD_";

    private BrokerMain() {}

    public static void main(String[] args) {
        ForegroundMain.run("loraflow broker", "java -jar loraflow-broker.jar [--partitions N] [--auto-create-topics]",
                () -> parse(args), LocalKafkaBroker::start, BrokerStartException.class, LocalKafkaBroker::child,
                broker -> {
                    System.out.println("bootstrap.servers=" + broker.bootstrapServers());
                    System.out.flush();
                    System.err.println("loraflow broker: log in " + broker.logFile() + "; stop with Ctrl-C or SIGTERM");
                });
    }

    private static LocalKafkaBroker.Options parse(String[] args) {
        Map<String, String> passwords = new HashMap<>();
        for (String user : PlatformUsers.ALL) {
            String password = System.getenv(PASSWORD_VARIABLE_PREFIX + user.toUpperCase(Locale.ROOT));
            if (password != null && !password.isEmpty()) {
                passwords.put(user, password);
            }
        }
        LocalKafkaBroker.Options options = LocalKafkaBroker.Options.defaults().withPasswords(passwords);
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--partitions" -> {
                    if (i + 1 == args.length) {
                        throw new IllegalArgumentException("--partitions needs a number");
                    }
                    String value = args[++i];
                    try {
                        options = options.withPartitions(Integer.parseInt(value));
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("--partitions needs a number, got '" + value + "'");
                    }
                }
                case "--auto-create-topics" -> options = options.withAutoCreateTopics(true);
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'");
            }
        }
        return options;
    }
}
