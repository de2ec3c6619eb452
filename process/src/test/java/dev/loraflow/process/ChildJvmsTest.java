package dev.loraflow.process;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** Real child JVMs ({@link TestServer}): started, awaited, stopped, restarted, and their failures reported. */
class ChildJvmsTest {

    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    /** The owner's exception, as BrokerStartException and S3ServerStartException are. */
    static final class StartFailed extends RuntimeException {
        StartFailed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final ChildJvms kind = new ChildJvms("test server", "loraflow-process-test-", "server.log",
            List.of("-Xmx32m", "-XX:+UseSerialGC"), StartFailed::new);

    private static List<String> run(String... arguments) {
        List<String> command = new ArrayList<>(List.of("-cp", System.getProperty("java.class.path"),
                TestServer.class.getName()));
        command.addAll(List.of(arguments));
        return command;
    }

    private record Listening(ChildJvm child, int port) {}

    private Listening listen() {
        return kind.start(workspace -> {
            int port = kind.freePorts(1)[0];
            ChildJvm child = workspace.launch(run("listen", Integer.toString(port)));
            // the port accepts connections as soon as it is bound, a moment before the line is written
            kind.awaitReady(child, TIMEOUT, () -> ChildJvms.accepts(port) && logged(child, "listening on " + port));
            return new Listening(child, port);
        });
    }

    private static boolean logged(ChildJvm child, String line) {
        try {
            return Files.readString(child.logFile()).contains(line);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void aStartedChildRunsUntilClosedWhichDeletesItsDirectory() throws Exception {
        Listening listening = listen();
        ChildJvm child = listening.child();
        assertTrue(child.process().isAlive());
        assertTrue(Files.readString(child.logFile()).contains("listening on " + listening.port()), child.logTail());
        assertTrue(child.logFile().startsWith(child.directory()));
        child.close();
        assertFalse(child.process().isAlive());
        assertFalse(Files.exists(child.directory()), "the directory is deleted");
        child.close(); // closing twice is harmless
    }

    @Test
    void aStoppedChildComesBackOnRestartInTheSameDirectory() {
        Listening listening = listen();
        try (ChildJvm child = listening.child()) {
            ProcessHandle first = child.process();
            child.stop();
            assertFalse(first.isAlive());
            assertFalse(ChildJvms.accepts(listening.port()));
            assertTrue(Files.isDirectory(child.directory()), "stop keeps the directory");
            child.restart();
            kind.awaitReady(child, TIMEOUT, () -> ChildJvms.accepts(listening.port()));
            assertTrue(child.process().isAlive());
            assertTrue(child.process().pid() != first.pid());
            assertThrows(IllegalStateException.class, child::restart, "it is running");
        }
    }

    @Test
    void aChildThatExitsWhileStartingFailsWithItsLogAndLeavesNothingBehind() {
        AtomicReference<Path> directory = new AtomicReference<>();
        StartFailed failure = assertThrows(StartFailed.class, () -> kind.start(workspace -> {
            directory.set(workspace.directory());
            ChildJvm child = workspace.launch(run("fail", "3", "the configuration is wrong"));
            kind.awaitReady(child, TIMEOUT, () -> false);
            return child;
        }));
        assertTrue(failure.getMessage().contains("test server exited with code 3"), failure.getMessage());
        assertTrue(failure.getMessage().contains("the configuration is wrong"), failure.getMessage());
        assertFalse(Files.exists(directory.get()), "the directory is deleted");
    }

    @Test
    void aChildNotReadyInTimeFails() {
        StartFailed failure = assertThrows(StartFailed.class, () -> kind.start(workspace -> {
            int port = kind.freePorts(1)[0];
            ChildJvm child = workspace.launch(run("listen", Integer.toString(port)));
            kind.awaitReady(child, Duration.ofMillis(200), () -> false);
            return child;
        }));
        assertTrue(failure.getMessage().contains("test server was not ready within PT0.2S"), failure.getMessage());
    }

    @Test
    void aPortTakenMeanwhileIsTriedAgainOnANewDirectoryAndGivenUpAfterThreeAttempts() {
        AtomicInteger attempts = new AtomicInteger();
        Listening listening = kind.start(workspace -> {
            if (attempts.incrementAndGet() == 1) {
                ChildJvm child = workspace.launch(run("fail", "1", "java.net.BindException: Address already in use"));
                kind.awaitReady(child, TIMEOUT, () -> false);
            }
            int port = kind.freePorts(1)[0];
            ChildJvm child = workspace.launch(run("listen", Integer.toString(port)));
            // the port accepts connections as soon as it is bound, a moment before the line is written
            kind.awaitReady(child, TIMEOUT, () -> ChildJvms.accepts(port) && logged(child, "listening on " + port));
            return new Listening(child, port);
        });
        listening.child().close();
        assertEquals(2, attempts.get());

        StartFailed failure = assertThrows(StartFailed.class, () -> kind.start(workspace -> {
            ChildJvm child = workspace.launch(run("fail", "1", "Failed to bind to 127.0.0.1"));
            kind.awaitReady(child, TIMEOUT, () -> false);
            return child;
        }));
        assertTrue(failure.getMessage().startsWith("test server could not bind its ports in 3 attempts"), failure.getMessage());
    }

    @Test
    void aToolRunToItsEndMustSucceed() {
        StartFailed failure = assertThrows(StartFailed.class, () -> kind.start(workspace -> {
            workspace.run(run("fail", "2", "no storage"), "formatting", TIMEOUT);
            return null;
        }));
        assertTrue(failure.getMessage().contains("formatting failed with exit code 2"), failure.getMessage());
        assertTrue(failure.getMessage().contains("no storage"), failure.getMessage());
    }

    @Test
    void aMissingClasspathResourceSaysHowToBuildIt() {
        StartFailed failure = assertThrows(StartFailed.class,
                () -> kind.buildClasspath(ChildJvmsTest.class, "no-such-classpath.txt", "broker"));
        assertTrue(failure.getMessage().contains("./mvnw -pl broker -am package"), failure.getMessage());
    }
}
