package dev.loraflow.cli;

import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code ./loraflow <command>}: the local commands, each a thin layer over core. */
@Command(name = "loraflow", mixinStandardHelpOptions = true, version = "loraflow 0.1.0",
        description = "JVM-native LoRA fine-tuning: local commands.",
        subcommands = {InitModelCommand.class, TrainCommand.class, EvalCommand.class, GenerateCommand.class,
                MergeCommand.class, ExportOnnxCommand.class})
public final class Main implements Runnable {

    /** Wrong or missing arguments: picocli's usage code, which the launcher documents. */
    static final int USAGE_ERROR = CommandLine.ExitCode.USAGE;
    /** The footer of every command's --help: what the launcher reads from the environment for it. */
    private static final String ENVIRONMENT = "%nEnvironment: LORAFLOW_JAVA_OPTS (extra JVM options, e.g. -Xmx8g),"
            + " JAVA_HOME (a JDK >= 25; ./loraflow finds one otherwise), LORAFLOW_ONNXRUNTIME_CACHE (where ONNX"
            + " Runtime's native libraries are unpacked once; default /tmp/loraflow-onnxruntime-<user>),"
            + " LORAFLOW_CDS_DIR (an owner-only directory for each command's class-data-sharing archive, which"
            + " shortens its start; default $TMPDIR/loraflow-cds-<uid>).";
    /** The arguments were fine but the work failed (bad data, unreadable model, …). */
    static final int FAILURE = 1;

    @CommandLine.Spec
    private CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        PrintWriter err = new PrintWriter(System.err, true);
        // A failure on a thread of its own (none is expected: the kernels' workers hand theirs to the caller)
        // still ends the process the way a failed command does, not with a stack trace and a hang.
        Thread.setDefaultUncaughtExceptionHandler((thread, failure) -> {
            err.println("loraflow: " + describe(failure));
            Runtime.getRuntime().halt(FAILURE);
        });
        System.exit(run(args, new PrintWriter(System.out, true), err));
    }

    /** Runs a command line; returns the exit code instead of exiting, for tests. */
    static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine commandLine = new CommandLine(new Main());
        // Every command offers --version (mixinStandardHelpOptions); each prints loraflow's
        // and names the environment the launcher reads for it.
        commandLine.getSubcommands().values().forEach(command -> command.getCommandSpec()
                .version(commandLine.getCommandSpec().version())
                .usageMessage().footer(ENVIRONMENT));
        commandLine.setOut(out);
        commandLine.setErr(err);
        // Wrong arguments: one line naming what is wrong and where the usage is (picocli's default prints the
        // whole usage after it, burying the line that matters). An unknown option is named first: picocli
        // reports the missing required options instead when there are some.
        commandLine.setParameterExceptionHandler((wrong, arguments) -> {
            CommandLine failed = wrong.getCommandLine();
            List<String> unmatched = failed.getUnmatchedArguments();
            String message = unmatched.isEmpty() ? describe(wrong)
                    : describe(new CommandLine.UnmatchedArgumentException(failed, unmatched));
            String command = failed.getCommandSpec().qualifiedName();
            failed.getErr().println(command + ": " + message + " (./" + command + " --help lists the options)");
            return USAGE_ERROR;
        });
        // Failures of the work itself are reported in one line, not as a stack trace: they are the
        // user's data or files, and the message names what is wrong.
        commandLine.setExecutionExceptionHandler((exception, failed, parseResult) -> {
            failed.getErr().println("loraflow " + failed.getCommandName() + ": " + describe(exception));
            return FAILURE;
        });
        try {
            return commandLine.execute(args);
        } catch (Error error) {
            // picocli hands only Exceptions to the handler above; an Error (out of memory, a native library
            // that does not load) ends the command the same way: one line, exit code 1.
            String command = args.length > 0 && commandLine.getSubcommands().containsKey(args[0]) ? " " + args[0] : "";
            err.println("loraflow" + command + ": " + describe(error));
            return FAILURE;
        }
    }

    static String describe(Throwable failure) {
        if (failure instanceof OutOfMemoryError) {
            long heapMiB = Runtime.getRuntime().maxMemory() >> 20;
            return "out of memory (" + failure.getMessage() + ", Java heap limit " + heapMiB
                    + " MiB): use a smaller model or batch, or raise the limit, e.g. LORAFLOW_JAVA_OPTS=-Xmx"
                    + Math.max(2, heapMiB * 2 / 1024) + "g";
        }
        String message = failure.getMessage();
        // A file system failure without a reason says only the path (a missing --data file read "loraflow eval:
        // d.jsonl"): it is said what happened to it.
        String text = message == null || message.isBlank() ? failure.getClass().getSimpleName() : switch (failure) {
            case Error error -> error.getClass().getSimpleName() + ": " + message;
            case NoSuchFileException missing when missing.getReason() == null -> "no such file or directory: " + message;
            case AccessDeniedException denied when denied.getReason() == null -> "permission denied: " + message;
            case FileAlreadyExistsException exists when exists.getReason() == null -> "already exists: " + message;
            case NotDirectoryException notDirectory when notDirectory.getReason() == null -> "not a directory: " + message;
            default -> message;
        };
        // One line, whatever the message holds.
        return text.replaceAll("\\s*\\R\\s*", " ");
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
    }
}
