package dev.loraflow.s3server;

import dev.loraflow.process.ChildJvm;
import dev.loraflow.process.ChildJvms;
import java.io.IOException;
import java.io.Writer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.regex.Pattern;

/**
 * A real S3 API server — S3Proxy with its filesystem backend — running as a child JVM on a free 127.0.0.1
 * port. It checks AWS signatures (V2 or V4) against one access key, serves path-style requests, and keeps
 * each bucket as a directory of {@link #dataDirectory()}. {@link #close()} stops it and deletes its
 * temporary directory (a data directory given in the {@link Options} stays); a shutdown hook does the same
 * when the owner forgets ({@link ChildJvm}).
 *
 * <p>The child runs from the S3Proxy jar that the Maven build resolved: its path is in the
 * {@code s3proxy-jar.txt} resource written by this module's build.
 */
public final class LocalS3Server implements AutoCloseable {

    /** Which bucket to create, the key clients sign with, where the objects live and how long to wait. */
    public record Options(String bucket, String accessKey, String secretKey, Optional<Path> dataDirectory,
                          Duration startTimeout) {

        public Options {
            if (!BUCKET.matcher(bucket).matches()) {
                throw new IllegalArgumentException("bucket \"" + bucket + "\" must be 3-63 of [a-z0-9.-], starting and"
                        + " ending with a letter or digit");
            }
            if (!KEY.matcher(accessKey).matches() || !KEY.matcher(secretKey).matches()) {
                throw new IllegalArgumentException("the access and secret keys must be 16-128 of [A-Za-z0-9_-]");
            }
            if (startTimeout.isNegative() || startTimeout.isZero()) {
                throw new IllegalArgumentException("startTimeout must be positive, got " + startTimeout);
            }
        }

        /** Bucket {@code loraflow}, fresh random keys, objects in the temporary directory, 60 s to start. */
        public static Options defaults() {
            return new Options("loraflow", "loraflow-" + random(8), random(24), Optional.empty(), Duration.ofSeconds(60));
        }

        public Options withBucket(String bucket) {
            return new Options(bucket, accessKey, secretKey, dataDirectory, startTimeout);
        }

        public Options withKeys(String accessKey, String secretKey) {
            return new Options(bucket, accessKey, secretKey, dataDirectory, startTimeout);
        }

        /** Keeps the objects in {@code directory} (created if missing), which outlives the server. */
        public Options withDataDirectory(Path directory) {
            return new Options(bucket, accessKey, secretKey, Optional.of(directory), startTimeout);
        }
    }

    private static final Pattern BUCKET = Pattern.compile("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]");
    private static final Pattern KEY = Pattern.compile("[A-Za-z0-9_-]{16,128}");
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final String JAR_RESOURCE = "s3proxy-jar.txt";
    // S3Proxy streams objects to and from files: a small heap is plenty.
    private static final ChildJvms S3PROXY = new ChildJvms("S3Proxy", "loraflow-s3-", "s3proxy.log",
            List.of("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"), S3ServerStartException::new);

    private final ChildJvm child;
    private final Path dataDirectory;
    private final int port;
    private final Options options;

    private LocalS3Server(ChildJvm child, Path dataDirectory, int port, Options options) {
        this.child = child;
        this.dataDirectory = dataDirectory;
        this.port = port;
        this.options = options;
    }

    /** Starts a server with {@link Options#defaults()}. */
    public static LocalS3Server start() {
        return start(Options.defaults());
    }

    /**
     * Writes the configuration, creates the bucket, starts S3Proxy and returns once it answers HTTP.
     *
     * @throws S3ServerStartException when it fails or is not ready within the start timeout; the message
     *     carries the tail of its log
     */
    public static LocalS3Server start(Options options) {
        String jar = S3PROXY.buildClasspath(LocalS3Server.class, JAR_RESOURCE, "s3server").getFirst();
        return S3PROXY.start(workspace -> {
            Path data = options.dataDirectory().orElse(workspace.directory().resolve("data")).toAbsolutePath();
            // The filesystem backend serves a bucket for each directory: creating it is creating the bucket.
            Files.createDirectories(data.resolve(options.bucket()));
            int port = S3PROXY.freePorts(1)[0];
            Path properties = workspace.directory().resolve("s3proxy.conf");
            writeProperties(properties, port, data, options);
            ChildJvm child = workspace.launch(List.of("-jar", jar, "--properties", properties.toString()));
            LocalS3Server server = new LocalS3Server(child, data, port, options);
            try (HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofMillis(500)).build()) {
                S3PROXY.awaitReady(child, options.startTimeout(), () -> answers(http, server.endpoint()));
            }
            return server;
        });
    }

    /** {@code http://127.0.0.1:<port>}: what clients set as their S3 endpoint (path-style). */
    public URI endpoint() {
        return URI.create("http://127.0.0.1:" + port);
    }

    public String bucket() {
        return options.bucket();
    }

    public String accessKey() {
        return options.accessKey();
    }

    public String secretKey() {
        return options.secretKey();
    }

    /** {@code s3://<bucket>/<prefix>}: an artifact store location in this server's bucket. */
    public String storeUri(String prefix) {
        return "s3://" + options.bucket() + "/" + prefix;
    }

    /** The directory whose subdirectories are the buckets: {@code <bucket>/<key>} is an object's file. */
    public Path dataDirectory() {
        return dataDirectory;
    }

    /** Everything the S3Proxy JVM wrote to stdout and stderr. */
    public Path logFile() {
        return child.logFile();
    }

    /** The S3Proxy JVM, e.g. to wait for it. */
    public ProcessHandle process() {
        return child.process();
    }

    /** The S3Proxy child JVM. */
    ChildJvm child() {
        return child;
    }

    /** Stops the server (SIGTERM, then a forced kill after 20 s) and deletes its temporary directory. */
    @Override
    public void close() {
        child.close();
    }

    /** Ready once it answers HTTP at all: an unsigned request gets 403, which is an S3 answer. */
    private static boolean answers(HttpClient http, URI endpoint) throws InterruptedException {
        try {
            http.send(HttpRequest.newBuilder(endpoint).timeout(Duration.ofSeconds(2)).GET().build(),
                    HttpResponse.BodyHandlers.discarding());
            return true;
        } catch (IOException notYet) {
            return false;
        }
    }

    private static void writeProperties(Path file, int port, Path data, Options options) throws IOException {
        Properties properties = new Properties();
        properties.setProperty("s3proxy.endpoint", "http://127.0.0.1:" + port);
        properties.setProperty("s3proxy.authorization", "aws-v2-or-v4");
        properties.setProperty("s3proxy.identity", options.accessKey());
        properties.setProperty("s3proxy.credential", options.secretKey());
        properties.setProperty("jclouds.provider", "filesystem");
        properties.setProperty("jclouds.filesystem.basedir", data.toString());
        try (Writer writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            properties.store(writer, "loraflow local S3 server");
        }
    }

    private static String random(int bytes) {
        byte[] value = new byte[bytes];
        RANDOM.nextBytes(value);
        return HexFormat.of().formatHex(value);
    }
}
