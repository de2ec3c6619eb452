package dev.loraflow.s3server;

import dev.loraflow.process.ForegroundMain;
import java.nio.file.Path;

/**
 * Runs a local S3 server until this JVM is stopped (SIGTERM or Ctrl-C), for {@code ./loraflow up --store s3}:
 * prints {@code endpoint=http://127.0.0.1:<port>} on stdout once it answers. Clients sign with the key in
 * the environment variables {@code AWS_ACCESS_KEY_ID} and {@code AWS_SECRET_ACCESS_KEY} (both required:
 * the same variables the services read). The key is never printed.
 *
 * <pre>java -jar s3server/target/loraflow-s3server.jar --data DIR [--bucket NAME]</pre>
 *
 * Exit codes: 1 the server failed, 2 wrong arguments; stopped by a signal, 143 (SIGTERM) or 130 (Ctrl-C).
 */
public final class S3ServerMain {

    private S3ServerMain() {}

    public static void main(String[] args) {
        ForegroundMain.run("loraflow s3server",
                "AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… java -jar loraflow-s3server.jar --data DIR [--bucket NAME]",
                () -> parse(args), LocalS3Server::start, S3ServerStartException.class, LocalS3Server::child,
                server -> {
                    System.out.println("endpoint=" + server.endpoint());
                    System.out.flush();
                    System.err.println("loraflow s3server: bucket " + server.bucket() + " in " + server.dataDirectory()
                            + ", log in " + server.logFile() + "; stop with Ctrl-C or SIGTERM");
                });
    }

    private static LocalS3Server.Options parse(String[] args) {
        String accessKey = System.getenv("AWS_ACCESS_KEY_ID");
        String secretKey = System.getenv("AWS_SECRET_ACCESS_KEY");
        if (accessKey == null || secretKey == null) {
            throw new IllegalArgumentException("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
        }
        LocalS3Server.Options options = LocalS3Server.Options.defaults().withKeys(accessKey, secretKey);
        boolean data = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--data", "--bucket" -> {
                    if (i + 1 == args.length) {
                        throw new IllegalArgumentException(args[i] + " needs a value");
                    }
                    String value = args[++i];
                    if (args[i - 1].equals("--data")) {
                        options = options.withDataDirectory(Path.of(value));
                        data = true;
                    } else {
                        options = options.withBucket(value);
                    }
                }
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'");
            }
        }
        if (!data) {
            throw new IllegalArgumentException("--data DIR is required: the objects outlive the server there");
        }
        return options;
    }
}
