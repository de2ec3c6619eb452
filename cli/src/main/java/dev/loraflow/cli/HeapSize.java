package dev.loraflow.cli;

import dev.loraflow.core.train.MemoryEstimate;
import java.util.Optional;
import java.util.OptionalLong;
import picocli.CommandLine;
import picocli.CommandLine.ParseResult;

/**
 * The launcher's pre-pass: {@code java -cp loraflow-cli.jar dev.loraflow.cli.HeapSize <command> [args]} prints the
 * {@code -Xmx} (and {@code -XX:MaxDirectMemorySize}) options the command should run with — what it will hold on the heap, with room for the collector
 * ({@link MemoryEstimate#heapLimit}), within this JVM's own maximum heap — or nothing where the arguments do not
 * tell (a command that loads no model, --help, arguments the command will refuse: it then says why itself).
 * A heap sized for the job keeps the collector from committing memory that nothing lives in, which the memory
 * mapped weights need.
 */
public final class HeapSize {

    private HeapSize() {}

    public static void main(String[] args) {
        heapOption(args).ifPresent(System.out::println);
    }

    static Optional<String> heapOption(String[] args) {
        try {
            ParseResult parsed = new CommandLine(new Main()).parseArgs(args);
            if (!parsed.hasSubcommand() || parsed.subcommand().isUsageHelpRequested()
                    || parsed.subcommand().isVersionHelpRequested()
                    || !(parsed.subcommand().commandSpec().userObject() instanceof HeapSized command)) {
                return Optional.empty();
            }
            OptionalLong needed = command.heapNeeded();
            long ceiling = Runtime.getRuntime().maxMemory();
            // Native memory (NF4/int8 weights) is bounded by MaxDirectMemorySize, which follows -Xmx unless given:
            // it keeps this JVM's limit, the memory check before loading guards it.
            return needed.isEmpty() ? Optional.empty() : Optional.of("-Xmx" + (MemoryEstimate.heapLimit(needed.getAsLong(),
                    ceiling) >> 20) + "m -XX:MaxDirectMemorySize=" + (ceiling >> 20) + "m");
        } catch (Exception unsized) {
            // wrong arguments, a missing model: the command itself reports it, under the default heap
            return Optional.empty();
        }
    }
}
