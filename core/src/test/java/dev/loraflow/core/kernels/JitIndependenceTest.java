package dev.loraflow.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A run resumed in a new JVM must reproduce an uninterrupted one bit for bit, so no kernel may give a
 * different result before and after C2 compiles it. The Vector API makes that easy to break: its
 * Java fallback, which runs until C2 compiles a method, and its C2 intrinsics agree on exact lane
 * operations but not on lane reductions or transcendental functions. This test runs every kernel
 * family in two child JVMs, one interpreting everything ({@code -Xint}, so the Vector API runs its
 * fallback throughout) and one that first repeats the same work until C2 has compiled it, and
 * compares the digests of all outputs.
 */
class JitIndependenceTest {

    /**
     * Rounds run before the printed one, with compile thresholds at a tenth of their defaults: enough
     * for C2 to compile every kernel with its Vector API calls intrinsified, as 3000 rounds at the
     * default thresholds do, in a few seconds.
     */
    private static final int WARMUP_ROUNDS = 1000;
    private static final List<String> COMPILE_EARLY = List.of("-XX:CompileThresholdScaling=0.1");
    private static final long CHILD_TIMEOUT_SECONDS = 240;

    @Test
    void interpretedAndCompiledKernelsAgreeBitForBit() throws IOException, InterruptedException {
        Map<String, String> interpreted = childDigests(List.of("-Xint"), 0);
        Map<String, String> compiled = childDigests(COMPILE_EARLY, WARMUP_ROUNDS);
        assertEquals(interpreted.keySet(), compiled.keySet());
        List<String> differing = new ArrayList<>();
        interpreted.forEach((family, digest) -> {
            if (!digest.equals(compiled.get(family))) {
                differing.add(family);
            }
        });
        assertTrue(differing.isEmpty(), "interpreted and C2-compiled kernels differ in " + differing);
    }

    /** Runs {@link KernelDigests} in a new JVM with the given JIT flags and returns its "family digest" lines. */
    private static Map<String, String> childDigests(List<String> jitFlags, int warmupRounds)
            throws IOException, InterruptedException {
        String java = ProcessHandle.current().info().command().orElseThrow(
                () -> new IllegalStateException("the running JVM does not report its java binary"));
        List<String> command = new ArrayList<>(List.of(java));
        command.addAll(jitFlags);
        command.addAll(List.of("--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xss4m",
                "-cp", System.getProperty("java.class.path"),
                KernelDigests.class.getName(), Integer.toString(warmupRounds)));
        Path log = Files.createTempFile("kernel-digests", ".txt");
        try {
            Process child = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!child.waitFor(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                child.destroyForcibly();
                throw new AssertionError("child JVM " + jitFlags + " did not finish in " + CHILD_TIMEOUT_SECONDS + " s");
            }
            String output = Files.readString(log);
            assertEquals(0, child.exitValue(), () -> "child JVM " + jitFlags + " failed:\n" + output);
            return parseDigests(output, jitFlags);
        } finally {
            Files.delete(log);
        }
    }

    private static Map<String, String> parseDigests(String output, List<String> jitFlags) {
        Map<String, String> digests = new LinkedHashMap<>();
        for (String line : output.lines().toList()) {
            String[] fields = line.split(" ");
            if (fields.length == 2 && !line.startsWith("WARNING")) {
                digests.put(fields[0], fields[1]);
            }
        }
        assertTrue(digests.containsKey("lanes"), () -> "child JVM " + jitFlags + " printed no digests:\n" + output);
        return digests;
    }
}
