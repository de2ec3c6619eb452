package dev.loraflow.cli;

import java.io.PrintWriter;
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
    /** The arguments were fine but the work failed (bad data, unreadable model, …). */
    static final int FAILURE = 1;

    @CommandLine.Spec
    private CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs a command line; returns the exit code instead of exiting, for tests. */
    static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine commandLine = new CommandLine(new Main());
        commandLine.setOut(out);
        commandLine.setErr(err);
        // Failures of the work itself are reported in one line, not as a stack trace: they are the
        // user's data or files, and the message names what is wrong.
        commandLine.setExecutionExceptionHandler((exception, failed, parseResult) -> {
            failed.getErr().println("loraflow " + failed.getCommandName() + ": " + describe(exception));
            return FAILURE;
        });
        return commandLine.execute(args);
    }

    private static String describe(Exception exception) {
        String message = exception.getMessage();
        return message == null || message.isBlank() ? exception.getClass().getSimpleName() : message;
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
    }
}
