package dev.loraflow.cli;

import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

/** Range checks picocli's types cannot express; failures are usage errors (exit code 2). */
final class Options {

    private Options() {}

    static void positive(CommandSpec spec, String option, long value) {
        if (value <= 0) {
            throw new CommandLine.ParameterException(spec.commandLine(), option + " must be > 0, got " + value);
        }
    }

    static void nonNegative(CommandSpec spec, String option, double value) {
        if (!(value >= 0) || !Double.isFinite(value)) {
            throw new CommandLine.ParameterException(spec.commandLine(), option + " must be >= 0, got " + value);
        }
    }

    static void check(CommandSpec spec, boolean condition, String message) {
        if (!condition) {
            throw new CommandLine.ParameterException(spec.commandLine(), message);
        }
    }
}
