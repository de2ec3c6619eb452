package dev.loraflow.process;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Starts one kind of local server as child JVMs of this one (the Kafka broker, S3Proxy): each in a fresh
 * temporary directory, with everything it prints appended to a log file there, on ports found free on
 * 127.0.0.1. A start that fails stops what it launched and deletes the directory; one whose port another
 * process took meanwhile is tried again on new ports. Failures are the owner's exception type, each message
 * ending with the tail of the child's log.
 */
public final class ChildJvms {

    /** Makes the owner's exception for a failed start (the cause may be null). */
    @FunctionalInterface
    public interface Failure {
        RuntimeException of(String message, Throwable cause);
    }

    /**
     * One attempt at starting: prepares the directory (configuration, data), launches the child in it and
     * returns the owner once the child is ready. What it launched is stopped if it fails.
     */
    @FunctionalInterface
    public interface Attempt<T> {
        T start(Workspace workspace) throws IOException;
    }

    /** Whether the child answers yet; asked until it does, it dies or the start timeout passes. */
    @FunctionalInterface
    public interface Readiness {
        boolean ready() throws InterruptedException;
    }

    private static final int PORT_ATTEMPTS = 3;
    private static final int LOG_TAIL_LINES = 40;
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(20);
    private static final Duration POLL = Duration.ofMillis(50);
    // What a JVM server writes when its port was taken between our check and its bind.
    private static final List<String> PORT_TAKEN = List.of("Address already in use", "Failed to bind");

    private final String name;
    private final String directoryPrefix;
    private final String logName;
    private final List<String> jvmOptions;
    private final Failure failure;

    /**
     * @param name what the child is, in messages ("Kafka broker", "S3Proxy")
     * @param directoryPrefix the prefix of each start's temporary directory
     * @param logName the log file's name in that directory
     * @param jvmOptions the child JVM's options (heap, collector, system properties)
     * @param failure the owner's exception for a failed start
     */
    public ChildJvms(String name, String directoryPrefix, String logName, List<String> jvmOptions, Failure failure) {
        this.name = name;
        this.directoryPrefix = directoryPrefix;
        this.logName = logName;
        this.jvmOptions = List.copyOf(jvmOptions);
        this.failure = failure;
    }

    /** What the child is, in messages. */
    public String name() {
        return name;
    }

    /**
     * Runs {@code attempt} in a fresh directory, again in another (new ports) when the child could not bind a
     * port chosen as free, at most three times.
     */
    public <T> T start(Attempt<T> attempt) {
        for (int tries = 1; ; tries++) {
            try {
                return startOnce(attempt);
            } catch (PortTakenException portTaken) {
                if (tries == PORT_ATTEMPTS) {
                    throw failure.of(name + " could not bind its ports in " + PORT_ATTEMPTS + " attempts; its last log:\n"
                            + portTaken.getMessage(), null);
                }
            }
        }
    }

    private <T> T startOnce(Attempt<T> attempt) {
        Path directory;
        try {
            directory = Files.createTempDirectory(directoryPrefix);
        } catch (IOException e) {
            throw failure.of("could not create a directory for " + name + ": " + e.getMessage(), e);
        }
        Workspace workspace = new Workspace(directory, directory.resolve(logName));
        try {
            return attempt.start(workspace);
        } catch (IOException e) {
            workspace.abandon();
            throw failure.of("could not prepare " + name + " in " + directory + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            workspace.abandon();
            throw e;
        }
    }

    /** The directory of one start attempt, and the children launched in it. */
    public final class Workspace {

        private final Path directory;
        private final Path logFile;
        private final List<ChildJvm> children = new ArrayList<>();

        private Workspace(Path directory, Path logFile) {
            this.directory = directory;
            this.logFile = logFile;
        }

        public Path directory() {
            return directory;
        }

        public Path logFile() {
            return logFile;
        }

        /**
         * Launches the server: {@code java <options> <arguments>}. The child owns the directory: closing it
         * stops the process and deletes the directory, as does a shutdown hook when its owner forgets.
         */
        public ChildJvm launch(List<String> arguments) {
            ChildJvm child = new ChildJvm(ChildJvms.this, directory, logFile, arguments);
            children.add(child);
            return child;
        }

        /** Runs a tool in a child JVM to its end, e.g. to format storage; a non-zero exit fails the start. */
        public void run(List<String> arguments, String what, Duration timeout) {
            Process tool = ChildJvms.this.launch(arguments, logFile);
            try {
                if (!tool.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    stop(tool);
                    throw failure.of(what + " did not finish in " + timeout + "; its log ends with:\n" + logTail(logFile), null);
                }
            } catch (InterruptedException e) {
                stop(tool);
                Thread.currentThread().interrupt();
                throw failure.of("interrupted during " + what, e);
            }
            if (tool.exitValue() != 0) {
                throw failure.of(what + " failed with exit code " + tool.exitValue() + "; its log ends with:\n"
                        + logTail(logFile), null);
            }
        }

        private void abandon() {
            if (children.isEmpty()) {
                deleteRecursively(directory);
            }
            children.forEach(ChildJvm::close);
        }
    }

    /**
     * Returns once {@code readiness} says the child answers.
     *
     * @throws RuntimeException the owner's failure when the child exits or is not ready within {@code timeout}
     */
    public void awaitReady(ChildJvm child, Duration timeout, Readiness readiness) {
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            while (true) {
                Process process = child.currentProcess();
                if (!process.isAlive()) {
                    String tail = logTail(child.logFile());
                    if (PORT_TAKEN.stream().anyMatch(tail::contains)) {
                        throw new PortTakenException(tail);
                    }
                    throw failure.of(name + " exited with code " + process.exitValue() + " while starting; its log ends with:\n"
                            + tail, null);
                }
                if (System.nanoTime() - deadline > 0) {
                    throw failure.of(name + " was not ready within " + timeout + "; its log ends with:\n"
                            + logTail(child.logFile()), null);
                }
                if (readiness.ready()) {
                    return;
                }
                Thread.sleep(POLL);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw failure.of("interrupted while waiting for " + name, e);
        }
    }

    /** Whether something accepts connections on 127.0.0.1:{@code port} (within 200 ms). */
    public static boolean accepts(int port) {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
            return true;
        } catch (IOException refused) {
            return false;
        }
    }

    /** {@code count} different ports that were free on 127.0.0.1 a moment ago. */
    public int[] freePorts(int count) {
        // All sockets stay open until every port is chosen, so the ports differ.
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                sockets.add(new ServerSocket(0, 1, InetAddress.getLoopbackAddress()));
            }
            return sockets.stream().mapToInt(ServerSocket::getLocalPort).toArray();
        } catch (IOException e) {
            throw failure.of("could not find free ports on 127.0.0.1: " + e.getMessage(), e);
        } finally {
            for (ServerSocket socket : sockets) {
                try {
                    socket.close();
                } catch (IOException ignored) {
                    // Closing a listening socket that accepted nothing does not fail in practice.
                }
            }
        }
    }

    /**
     * The jars the Maven build of {@code module} resolved for the child, from the resource {@code resource}
     * next to {@code anchor} (written by its maven-dependency-plugin's build-classpath); each must exist.
     */
    public List<String> buildClasspath(Class<?> anchor, String resource, String module) {
        String text;
        try (InputStream in = anchor.getResourceAsStream(resource)) {
            if (in == null) {
                throw failure.of("resource " + resource + " is missing next to " + anchor.getName() + "; build the " + module
                        + " module with Maven (./mvnw -pl " + module + " -am package)", null);
            }
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw failure.of("could not read " + resource + ": " + e.getMessage(), e);
        }
        List<String> entries = List.of(text.split(File.pathSeparator));
        for (String entry : entries) {
            if (!Files.isRegularFile(Path.of(entry))) {
                throw failure.of(name + " jar " + entry + " named in " + resource + " does not exist; rebuild the " + module
                        + " module with Maven on this machine", null);
            }
        }
        return entries;
    }

    /** The last 40 lines of a child's log, or why it cannot be read. */
    public static String logTail(Path logFile) {
        try {
            List<String> lines = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - LOG_TAIL_LINES), lines.size()));
        } catch (IOException e) {
            return "(log " + logFile + " unreadable: " + e.getMessage() + ")";
        }
    }

    Process launch(List<String> arguments, Path logFile) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        command.addAll(arguments);
        try {
            return new ProcessBuilder(command)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
        } catch (IOException e) {
            throw failure.of("could not start " + command.getFirst() + ": " + e.getMessage(), e);
        }
    }

    /** SIGTERM (the server's own shutdown hook closes its files cleanly), then a forced kill after 20 s. */
    static void stop(Process process) {
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

    static void deleteRecursively(Path directory) {
        if (!Files.exists(directory)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(directory)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        } catch (IOException e) {
            throw new IllegalStateException("could not delete the directory " + directory + ": " + e.getMessage(), e);
        }
    }

    /** The child could not bind a port chosen as free; the message is the log tail. */
    private static final class PortTakenException extends RuntimeException {
        PortTakenException(String logTail) {
            super(logTail);
        }
    }
}
