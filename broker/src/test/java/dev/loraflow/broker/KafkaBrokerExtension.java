package dev.loraflow.broker;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives a test class a running {@link LocalKafkaBroker}, stopped when the class is done. Its clients
 * sign in as one of the {@link PlatformUsers} ({@code kafka.clientProperties(PlatformUsers.PRODUCER)});
 * {@link PlatformUsers#ADMIN} may do anything.
 *
 * <pre>
 * &#64;ExtendWith(KafkaBrokerExtension.class)
 * class SomeTest {
 *     &#64;Test void sends(LocalKafkaBroker kafka) { ... new KafkaProducer&lt;&gt;(kafka.clientProperties(PlatformUsers.ADMIN), ...) ... }
 * }
 *
 * class OtherTest {
 *     &#64;RegisterExtension
 *     static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension(Options.defaults().withPartitions(8));
 *     ... KAFKA.broker().bootstrapServers() ...
 * }
 * </pre>
 *
 * Nested test classes share the broker of their enclosing class.
 */
public final class KafkaBrokerExtension implements BeforeAllCallback, ParameterResolver {

    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(KafkaBrokerExtension.class);

    private final LocalKafkaBroker.Options options;
    private LocalKafkaBroker broker;

    public KafkaBrokerExtension() {
        this(LocalKafkaBroker.Options.defaults());
    }

    public KafkaBrokerExtension(LocalKafkaBroker.Options options) {
        this.options = options;
    }

    /** The broker of the running test class. */
    public LocalKafkaBroker broker() {
        if (broker == null) {
            throw new IllegalStateException("the Kafka broker starts before the test class's @BeforeAll methods;"
                    + " register KafkaBrokerExtension on a static field or with @ExtendWith");
        }
        return broker;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        // The class-level store closes the AutoCloseable broker when the class is done; a nested
        // class finds its enclosing class's broker in the parent store.
        broker = brokerOf(context);
    }

    @Override
    public boolean supportsParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        return parameterContext.getParameter().getType() == LocalKafkaBroker.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        return brokerOf(extensionContext);
    }

    private LocalKafkaBroker brokerOf(ExtensionContext context) {
        return context.getStore(NAMESPACE)
                .computeIfAbsent(LocalKafkaBroker.class, key -> LocalKafkaBroker.start(options), LocalKafkaBroker.class);
    }
}
