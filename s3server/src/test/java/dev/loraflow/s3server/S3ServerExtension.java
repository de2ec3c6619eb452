package dev.loraflow.s3server;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives a test class a running {@link LocalS3Server}, stopped when the class is done:
 *
 * <pre>
 * &#64;RegisterExtension
 * static final S3ServerExtension S3 = new S3ServerExtension();
 * ... S3.server().endpoint() ... S3.server().storeUri("artifacts") ...
 * </pre>
 *
 * or {@code @ExtendWith(S3ServerExtension.class)} and a {@code LocalS3Server} parameter. Nested test classes
 * share the server of their enclosing class.
 */
public final class S3ServerExtension implements BeforeAllCallback, ParameterResolver {

    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(S3ServerExtension.class);

    private final LocalS3Server.Options options;
    private LocalS3Server server;

    public S3ServerExtension() {
        this(LocalS3Server.Options.defaults());
    }

    public S3ServerExtension(LocalS3Server.Options options) {
        this.options = options;
    }

    /** The server of the running test class. */
    public LocalS3Server server() {
        if (server == null) {
            throw new IllegalStateException("the S3 server starts before the test class's @BeforeAll methods;"
                    + " register S3ServerExtension on a static field or with @ExtendWith");
        }
        return server;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        server = serverOf(context);
    }

    @Override
    public boolean supportsParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        return parameterContext.getParameter().getType() == LocalS3Server.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        return serverOf(extensionContext);
    }

    private LocalS3Server serverOf(ExtensionContext context) {
        // The class-level store closes the AutoCloseable server when the class is done.
        return context.getStore(NAMESPACE)
                .computeIfAbsent(LocalS3Server.class, key -> LocalS3Server.start(options), LocalS3Server.class);
    }
}
