package dev.loraflow.s3server;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.util.Map;

/**
 * A local S3 server for {@code @QuarkusTest}s: the service's artifact store becomes
 * {@code s3://<bucket>/<prefix>} on it ({@code loraflow.store.uri}, with the endpoint and path-style in the
 * URI's query), and the AWS SDK's standard system properties {@code aws.accessKeyId} and
 * {@code aws.secretAccessKey} carry its key, as the environment would in production.
 *
 * <pre>
 * &#64;QuarkusTestResource(value = S3ServerTestResource.class, initArgs = &#64;ResourceArg(name = "prefix", value = "artifacts"))
 * </pre>
 *
 * Init args: {@code prefix} (default {@code artifacts}).
 */
public final class S3ServerTestResource implements QuarkusTestResourceLifecycleManager {

    /** The configuration key of the store location the services read. */
    public static final String STORE_URI = "loraflow.store.uri";

    private String prefix = "artifacts";
    private LocalS3Server server;

    @Override
    public void init(Map<String, String> initArgs) {
        for (Map.Entry<String, String> arg : initArgs.entrySet()) {
            if (!arg.getKey().equals("prefix")) {
                throw new IllegalArgumentException("S3ServerTestResource: unknown init arg '" + arg.getKey()
                        + "'; known: prefix");
            }
            prefix = arg.getValue();
        }
    }

    @Override
    public Map<String, String> start() {
        server = LocalS3Server.start();
        System.setProperty("aws.accessKeyId", server.accessKey());
        System.setProperty("aws.secretAccessKey", server.secretKey());
        return Map.of(STORE_URI, server.storeUri(prefix) + "?endpoint=" + server.endpoint() + "&path-style=true");
    }

    @Override
    public void stop() {
        if (server != null) {
            System.clearProperty("aws.accessKeyId");
            System.clearProperty("aws.secretAccessKey");
            server.close();
        }
    }

    /** The running server, e.g. to look at its objects. */
    public LocalS3Server server() {
        return server;
    }
}
