package dev.loraflow.process;

import java.util.concurrent.CountDownLatch;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The shape of a local server's main ({@code java -jar loraflow-broker.jar}, {@code loraflow-s3server.jar}, run by
 * {@code ./loraflow up}): parse the arguments, start the server, say where it listens on stdout, and run until
 * this JVM is stopped (SIGTERM or Ctrl-C), which stops the server first. A server that exits on its own ends
 * the main with its log's tail.
 *
 * <p>Exit codes: 1 the server failed, 2 wrong arguments; stopped by a signal, the JVM's own (143 for SIGTERM,
 * 130 for Ctrl-C) once the server has stopped.
 */
public final class ForegroundMain {

    private ForegroundMain() {}

    /**
     * @param label the prefix of every message on stderr ("loraflow broker")
     * @param usage the usage line printed after wrong arguments
     * @param parse reads the arguments (and environment); an {@link IllegalArgumentException} says what is wrong
     * @param start starts the server from what {@code parse} read
     * @param startFailure the exception of a failed start, which ends the main with code 1
     * @param child the server's child JVM, watched until it exits
     * @param announce prints where the server listens (stdout, read by the launcher scripts) and where it logs
     */
    public static <O, S extends AutoCloseable> void run(String label, String usage, Supplier<O> parse,
            Function<O, S> start, Class<? extends RuntimeException> startFailure, Function<S, ChildJvm> child,
            Consumer<S> announce) {
        O options;
        try {
            options = parse.get();
        } catch (IllegalArgumentException e) {
            System.err.println(label + ": " + e.getMessage());
            System.err.println("usage: " + usage);
            System.exit(2);
            return;
        }
        S server;
        try {
            server = start.apply(options);
        } catch (RuntimeException e) {
            if (!startFailure.isInstance(e)) {
                throw e;
            }
            System.err.println(label + ": " + e.getMessage());
            System.exit(1);
            return;
        }
        // A signal runs the shutdown hooks: this one lets the server stop first, and marks its exit as expected
        // so that the watch below stays quiet.
        CountDownLatch stopping = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.countDown();
            closeQuietly(server);
        }, label.replace(' ', '-') + "-main-shutdown"));
        announce.accept(server);
        System.out.flush();

        ChildJvm jvm = child.apply(server);
        jvm.process().onExit().join();
        if (stopping.getCount() == 0) {
            return;
        }
        System.err.println(label + ": " + jvm.name() + " exited on its own; its log ended with:\n"
                + jvm.logTail());
        closeQuietly(server);
        System.exit(1);
    }

    private static void closeQuietly(AutoCloseable server) {
        try {
            server.close();
        } catch (Exception e) {
            System.err.println("could not stop the server cleanly: " + e.getMessage());
        }
    }
}
