package dev.loraflow.process;

import java.nio.file.Path;
import java.util.List;

/**
 * A local server running as a child JVM, launched by {@link ChildJvms.Workspace#launch}: it owns its
 * temporary directory and log. {@link #close()} stops it and deletes the directory; a shutdown hook does the
 * same when the owner forgets. {@link #stop()} and {@link #restart()} take it away and bring it back on the
 * same directory, as an outage would.
 */
public final class ChildJvm implements AutoCloseable {

    private final ChildJvms kind;
    private final Path directory;
    private final Path logFile;
    private final List<String> arguments;
    private final Thread shutdownHook;
    private volatile Process process;
    private boolean closed;

    ChildJvm(ChildJvms kind, Path directory, Path logFile, List<String> arguments) {
        this.kind = kind;
        this.directory = directory;
        this.logFile = logFile;
        this.arguments = List.copyOf(arguments);
        this.process = kind.launch(this.arguments, logFile);
        this.shutdownHook = new Thread(this::stopAndDelete, "loraflow-" + kind.name().replace(' ', '-') + "-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /** What the child is ("Kafka broker", "S3Proxy"). */
    public String name() {
        return kind.name();
    }

    /** The temporary directory the child runs in. */
    public Path directory() {
        return directory;
    }

    /** Everything the child JVM wrote to stdout and stderr. */
    public Path logFile() {
        return logFile;
    }

    /** The last 40 lines of {@link #logFile()}. */
    public String logTail() {
        return ChildJvms.logTail(logFile);
    }

    /** The child JVM running now, e.g. to measure it or wait for it. */
    public ProcessHandle process() {
        return process.toHandle();
    }

    Process currentProcess() {
        return process;
    }

    /** Stops the child (SIGTERM, then a forced kill after 20 s), keeping its directory for {@link #restart()}. */
    public synchronized void stop() {
        if (closed) {
            throw new IllegalStateException("the " + kind.name() + " is closed");
        }
        ChildJvms.stop(process);
    }

    /** Launches a {@link #stop() stopped} child again with the same arguments; wait for it with {@link ChildJvms#awaitReady}. */
    public synchronized void restart() {
        if (closed) {
            throw new IllegalStateException("the " + kind.name() + " is closed");
        }
        if (process.isAlive()) {
            throw new IllegalStateException("the " + kind.name() + " is running");
        }
        process = kind.launch(arguments, logFile);
    }

    /** Stops the child (SIGTERM, then a forced kill after 20 s) and deletes its directory. */
    @Override
    public void close() {
        stopAndDelete();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shutdownInProgress) {
            // The hook is running or has run; it found the child already closed.
        }
    }

    private synchronized void stopAndDelete() {
        if (closed) {
            return;
        }
        closed = true;
        ChildJvms.stop(process);
        ChildJvms.deleteRecursively(directory);
    }
}
