package dev.loraflow.s3server;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.Writer;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A real S3 API server — S3Proxy with its filesystem backend — running as a child JVM on a free 127.0.0.1
 * port. It checks AWS signatures (V2 or V4) against one access key, serves path-style requests, and keeps
 * each bucket as a directory of {@link #dataDirectory()}. {@link #close()} stops it and deletes its
 * temporary directory (a data directory given in the {@link Options} stays); a shutdown hook does the same
 * when the owner forgets.
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
    private static final List<String> CHILD_JVM_OPTIONS = List.of(
            "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true");
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(20);
    private static final int PORT_ATTEMPTS = 3;
    private static final int LOG_TAIL_LINES = 40;

    private final Path directory;
    private final Path dataDirectory;
    private final Path logFile;
    private final int port;
    private final Options options;
    private final Process process;
    private final Thread shutdownHook;
    private boolean closed;

    private LocalS3Server(Path directory, Path dataDirectory, Path logFile, int port,
                          Options options, Process process) {
        this.directory = directory;
        this.dataDirectory = dataDirectory;
        this.logFile = logFile;
        this.port = port;
        this.options = options;
        this.process = process;
        this.shutdownHook = new Thread(this::stopAndDelete, "loraflow-s3-server-shutdown");
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
        Path jar = s3ProxyJar();
        // A port found free may be taken by another process before S3Proxy binds it; another is then tried.
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(options, jar);
            } catch (PortTakenException portTaken) {
                if (attempt == PORT_ATTEMPTS) {
                    throw new S3ServerStartException("S3Proxy could not bind a port in " + PORT_ATTEMPTS
                            + " attempts; its last log:\n" + portTaken.getMessage());
                }
            }
        }
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
        return logFile;
    }

    /** The S3Proxy JVM, e.g. to wait for it. */
    public ProcessHandle process() {
        return process.toHandle();
    }

    /** Stops the server (SIGTERM, then a forced kill after 20 s) and deletes its temporary directory. */
    @Override
    public void close() {
        stopAndDelete();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shutdownInProgress) {
            // The hook is running or has run; it found the server already closed.
        }
    }

    private synchronized void stopAndDelete() {
        if (closed) {
            return;
        }
        closed = true;
        stopProcess(process);
        deleteRecursively(directory);
    }

    private static LocalS3Server startOnce(Options options, Path jar) {
        Path directory;
        try {
            directory = Files.createTempDirectory("loraflow-s3-");
        } catch (IOException e) {
            throw new S3ServerStartException("could not create a directory for S3Proxy: " + e.getMessage(), e);
        }
        Path logFile = directory.resolve("s3proxy.log");
        LocalS3Server server = null;
        try {
            Path data = options.dataDirectory().orElse(directory.resolve("data")).toAbsolutePath();
            // The filesystem backend serves a bucket for each directory: creating it is creating the bucket.
            Files.createDirectories(data.resolve(options.bucket()));
            int port = freePort();
            Path properties = directory.resolve("s3proxy.conf");
            writeProperties(properties, port, data, options);
            Process process = launch(jar, properties, logFile);
            server = new LocalS3Server(directory, data, logFile, port, options, process);
            Runtime.getRuntime().addShutdownHook(server.shutdownHook);
            awaitReady(process, server.endpoint(), logFile, options.startTimeout());
            return server;
        } catch (IOException e) {
            deleteRecursively(directory);
            throw new S3ServerStartException("could not prepare S3Proxy in " + directory + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            if (server != null) {
                server.close();
            } else {
                deleteRecursively(directory);
            }
            throw e;
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

    private static Process launch(Path jar, Path properties, Path logFile) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(CHILD_JVM_OPTIONS);
        command.add("-jar");
        command.add(jar.toString());
        command.add("--properties");
        command.add(properties.toString());
        try {
            return new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
        } catch (IOException e) {
            throw new S3ServerStartException("could not start " + command.getFirst() + ": " + e.getMessage(), e);
        }
    }

    /** Ready once it answers HTTP at all: an unsigned request gets 403, which is an S3 answer. */
    private static void awaitReady(Process process, URI endpoint, Path logFile, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        HttpRequest request = HttpRequest.newBuilder(endpoint).timeout(Duration.ofSeconds(2)).GET().build();
        try (HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofMillis(500)).build()) {
            while (true) {
                if (!process.isAlive()) {
                    String tail = logTail(logFile);
                    if (tail.contains("Address already in use") || tail.contains("Failed to bind")) {
                        throw new PortTakenException(tail);
                    }
                    throw new S3ServerStartException("S3Proxy exited with code " + process.exitValue()
                            + " while starting; its log ends with:\n" + tail);
                }
                if (System.nanoTime() - deadline > 0) {
                    throw new S3ServerStartException("S3Proxy was not ready on " + endpoint + " within " + timeout
                            + "; its log ends with:\n" + logTail(logFile));
                }
                try {
                    http.send(request, HttpResponse.BodyHandlers.discarding());
                    return;
                } catch (IOException notYet) {
                    Thread.sleep(50);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new S3ServerStartException("interrupted while waiting for S3Proxy on " + endpoint, e);
        }
    }

    private static int freePort() {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new S3ServerStartException("could not find a free port on 127.0.0.1: " + e.getMessage(), e);
        }
    }

    static Path s3ProxyJar() {
        String text;
        try (InputStream in = LocalS3Server.class.getResourceAsStream(JAR_RESOURCE)) {
            if (in == null) {
                throw new S3ServerStartException("resource " + JAR_RESOURCE + " is missing next to "
                        + LocalS3Server.class.getName() + "; build the s3server module with Maven"
                        + " (./mvnw -pl s3server package)");
            }
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new S3ServerStartException("could not read " + JAR_RESOURCE + ": " + e.getMessage(), e);
        }
        Path jar = Path.of(text);
        if (!Files.isRegularFile(jar)) {
            throw new S3ServerStartException("S3Proxy jar " + jar + " named in " + JAR_RESOURCE
                    + " does not exist; rebuild the s3server module with Maven on this machine");
        }
        return jar;
    }

    private static void stopProcess(Process process) {
        process.destroy();
        try {
            if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly().waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    static String logTail(Path logFile) {
        try {
            List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size()));
        } catch (IOException e) {
            return "(log " + logFile + " unreadable: " + e.getMessage() + ")";
        }
    }

    private static void deleteRecursively(Path directory) {
        if (!Files.exists(directory)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(directory)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        } catch (IOException e) {
            throw new IllegalStateException("could not delete the S3 server directory " + directory + ": "
                    + e.getMessage(), e);
        }
    }

    private static String random(int bytes) {
        byte[] value = new byte[bytes];
        RANDOM.nextBytes(value);
        return HexFormat.of().formatHex(value);
    }

    /** S3Proxy could not bind the port chosen as free; the message is the log tail. */
    private static final class PortTakenException extends RuntimeException {
        PortTakenException(String logTail) {
            super(logTail);
        }
    }
}
