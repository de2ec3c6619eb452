package dev.loraflow.benchmarks;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The command lines of the benchmark mains: {@code --name value} options with defaults, value-less flags,
 * {@code --help}/{@code -h}, and wrong arguments reported in one line with exit code 2 (the CLI's usage code),
 * never as a stack trace. Every main's options are declared here, in one file that needs nothing but the JDK,
 * so that the bench/ scripts can run it as a source file ({@code java BenchmarkCommandLine.java NAME ARGS...},
 * see bench/lib.sh) to answer {@code --help} and reject wrong arguments before they build anything.
 */
public final class BenchmarkCommandLine {

    /** Wrong or missing arguments: the exit code of the CLI and of the launcher's scripts. */
    public static final int USAGE_ERROR = 2;

    private static final String TMP = System.getProperty("java.io.tmpdir");

    static final BenchmarkCommandLine SERVING_LOAD = new BenchmarkCommandLine("ServingLoad",
            "./loraflow bench-serving [--quantized ARGS | OPTIONS]",
            """
            The serving service against ONNX Runtime directly (dev.loraflow.benchmarks.ServingLoad): a model of
            GPT-2 small's shape (random weights) exported merged with one adapter and un-merged with --adapters,
            served by the packaged serving service in a child JVM on a free port. Measures the HTTP overhead
            against a direct ONNX Runtime loop, the KV cache against recomputing, continuous batching (waves of
            --clients streaming clients against waves of one) and a different adapter per client against the
            merged model. Prints a table; bench/run-serving.sh writes the figures to bench-results/serving-<time>.json, the progress and
            the servers' logs to the .log beside it, and builds the benchmarks and serving first when they are
            missing or older than their sources (with -Pcuda for --device cuda).
            --quantized [ARGS]: the F32/int8/int4 decode figures beside llama.cpp instead (bench/run-quantized.sh;
            ./loraflow bench-serving --quantized --help).""")
            .integer("--layers", "12", "transformer layers")
            .integer("--hidden", "768", "hidden size")
            .integer("--heads", "12", "attention heads")
            .integer("--vocab", "50257", "vocabulary size")
            .integer("--context", "512", "context length (positions)")
            .integer("--prompt", "16", "prompt tokens; --prompt + --tokens must fit the context")
            .integer("--tokens", "256", "tokens generated per request")
            .integer("--rounds", "3", "alternating rounds of the overhead and KV-cache measurements")
            .integer("--clients", "16", "concurrent streaming clients per wave")
            .integer("--waves", "2", "waves of each kind")
            .integer("--adapters", "64", "adapters of the un-merged export")
            .integer("--rank", "8", "LoRA rank of the adapters")
            .integer("--threads", "2", "ONNX Runtime intra-op threads of the server and of the direct loop")
            .choice("--device", "cpu", "where the server and the direct loop run the graph", "cpu", "cuda")
            .text("--server-jar", "serving/target/quarkus-app/quarkus-run.jar", "the packaged serving service")
            .text("--dir", TMP + "/loraflow-serving-bench", "work directory of the exports (run-serving.sh: a fresh "
                    + "temporary one, deleted afterwards)")
            .text("--out", "bench-results/serving.json", "where the figures go as JSON (run-serving.sh: "
                    + "bench-results/serving-<time>.json)")
            .environment("JAVA_HOME (a JDK >= 25; ./loraflow finds one), TMPDIR (the work directory's parent, "
                    + "default /tmp)");

    static final BenchmarkCommandLine STORE_THROUGHPUT = new BenchmarkCommandLine("StoreThroughput",
            "./loraflow bench-store [OPTIONS]",
            """
            The artifact stores' throughput (dev.loraflow.benchmarks.StoreThroughput): a directory holding one large
            file is copied with cp -r, stored in and opened from the local store, and uploaded to and downloaded
            from an S3 bucket on a local S3Proxy (multipart, ranged GETs, the read cache); then serving's cold load
            of an exported model from the local store and from S3. Medians of rounds in which the variants
            alternate. Prints one JSON line. Disk: about 3 x --size-mb. bench/run-store.sh builds the benchmarks
            and the S3 server first.""")
            .integer("--size-mb", "1024", "size of the artifact's large file in MiB")
            .integer("--rounds", "3", "rounds; each figure is their median")
            .integer("--model-layers", "8", "layers of the GPT-2-shaped model of the cold-load measurement")
            .text("--dir", TMP + "/loraflow-store-bench", "work directory; deleted and made again")
            .environment("JAVA_HOME (a JDK >= 25; ./loraflow finds one), LORAFLOW_JAVA_OPTS (extra JVM options)");

    static final BenchmarkCommandLine TRAINING_THROUGHPUT = new BenchmarkCommandLine("TrainingThroughput",
            "java -cp benchmarks/target/benchmarks.jar dev.loraflow.benchmarks.TrainingThroughput [OPTIONS]",
            """
            LoRA training throughput of a whole step (forward, backward, clipping, AdamW) on a model of a released
            shape with random weights: the Java half of ./loraflow bench-training (bench/run-training.sh), which
            runs the PyTorch half on the same step. Prints one JSON line.""")
            .text("--arch", "gpt2", "gpt2, llama (GPT-2 small's size) or an init-model preset (e.g. llama-3.2-1b)")
            .integer("--batch-size", "4", "sequences per step")
            .integer("--seq-len", "256", "tokens per sequence")
            .integer("--steps", "5", "measured steps")
            .integer("--warmup", "2", "steps run before the measured ones")
            .environment("none; -Dloraflow.threads=N sets the kernels' threads");

    static final BenchmarkCommandLine MERGE_THROUGHPUT = new BenchmarkCommandLine("MergeThroughput",
            "java -cp benchmarks/target/benchmarks.jar dev.loraflow.benchmarks.MergeThroughput [OPTIONS]",
            """
            Merge time of a GPT-2-small-shaped model (random weights) with LoRA on every attention and MLP module
            against copying the weights (all of them, and just the adapted ones). Prints one JSON line.""")
            .integer("--rounds", "7", "rounds; each figure is their median")
            .integer("--rank", "8", "LoRA rank")
            .choice("--files", "false", "also time the whole directory merge against copying the file",
                    "true", "false")
            .text("--dir", TMP + "/loraflow-merge-bench", "work directory of --files true; deleted afterwards")
            .environment("none; -Dloraflow.threads=1 for one core");

    static final BenchmarkCommandLine ONNX_EXPORT_THROUGHPUT = new BenchmarkCommandLine("OnnxExportThroughput",
            "java -cp benchmarks/target/benchmarks.jar dev.loraflow.benchmarks.OnnxExportThroughput [OPTIONS]",
            """
            ONNX export of a GPT-2-small-shaped model (random weights, LoRA r = 8 on c_attn): export time, session
            creation, and ONNX Runtime prefill and KV-cached decode of the merged graph against the model without
            LoRA and the un-merged graph. Prints one JSON line.""")
            .integer("--prompt", "128", "prompt tokens")
            .integer("--decode", "32", "decoded tokens")
            .integer("--rounds", "5", "rounds; each figure is their median")
            .integer("--threads", "2", "ONNX Runtime intra-op threads")
            .text("--dir", TMP + "/loraflow-onnx-bench", "work directory of the graphs; emptied afterwards")
            .environment("none");

    static final BenchmarkCommandLine QUANTIZED_DECODE = new BenchmarkCommandLine("QuantizedDecode",
            "java -cp benchmarks/target/benchmarks.jar dev.loraflow.benchmarks.QuantizedDecode --config FILE "
                    + "[OPTIONS] LABEL=FILE.onnx ...",
            """
            Batch-1 greedy decoding of exported graphs through ONNX Runtime, timed as bench/run-quantized.sh times
            llama.cpp (./loraflow bench-serving --quantized runs both). Prints one JSON line per graph and thread
            count. Operands: LABEL=FILE.onnx, one per graph; the first gives the reference tokens.""")
            .text("--config", null, "config.json of the exported model (required)")
            .sessionOptions()
            .integer("--tokens", "256", "tokens generated per round")
            .integer("--rounds", "3", "rounds; each figure is their median")
            .flag("--interleave", "open every graph at every thread count at once and run their rounds in turn, so"
                    + " that a changing load falls on all of them alike (all the graphs' weights in memory together)")
            .flag("--profile", "also ONNX Runtime's kernel time per token by operator type (slows the loop)")
            .operands("LABEL=FILE.onnx")
            .environment("none");

    static final BenchmarkCommandLine GRAPH_RUNS = new BenchmarkCommandLine("GraphRuns",
            "java -cp benchmarks/target/benchmarks.jar dev.loraflow.benchmarks.GraphRuns [OPTIONS] LABEL=FILE.onnx ...",
            """
            Runs of graphs without state through ONNX Runtime, timed: every input a float tensor of fixed values (a
            dynamic dimension taken as 1), --runs runs per round, the graphs at each thread count in turn within a
            round (interleaved, all sessions open at once). Prints one JSON line per graph and thread count: ms per
            run, the median of the rounds. For bench/matmulnbits_only.py's graphs: one run is the 4-bit matmuls of
            one decoded token.""")
            .sessionOptions()
            .integer("--runs", "255", "runs per round (255: the decode steps of a 256-token generation)")
            .integer("--rounds", "5", "rounds; each figure is their median")
            .flag("--profile", "also ONNX Runtime's kernel time per run by operator type")
            .operands("LABEL=FILE.onnx")
            .environment("none");

    private static final List<BenchmarkCommandLine> ALL = List.of(SERVING_LOAD, STORE_THROUGHPUT, TRAINING_THROUGHPUT,
            MERGE_THROUGHPUT, ONNX_EXPORT_THROUGHPUT, QUANTIZED_DECODE, GRAPH_RUNS);

    private enum Kind { INTEGER, TEXT, CHOICE, FLAG }

    private record Option(String name, Kind kind, String defaultValue, String description, List<String> choices) {}

    /** A wrong argument: its message names the option and what was wrong with it. */
    public static final class UsageException extends IllegalArgumentException {
        public UsageException(String message) {
            super(message);
        }
    }

    /** The parsed options and operands of one command line. */
    public static final class Arguments {
        private final Map<String, String> values;
        private final List<String> operands;

        private Arguments(Map<String, String> values, List<String> operands) {
            this.values = values;
            this.operands = operands;
        }

        /** The option's value (its default when not given; null for an option without default not given). */
        public String text(String name) {
            if (!values.containsKey(name)) {
                throw new IllegalStateException("no option " + name + " is declared");
            }
            return values.get(name);
        }

        /** The value of an integer option, which the parser has checked. */
        public int integer(String name) {
            return Integer.parseInt(text(name));
        }

        /** Whether a flag was given, or a true|false option is true. */
        public boolean isSet(String name) {
            return Boolean.parseBoolean(text(name));
        }

        public List<String> operands() {
            return operands;
        }

        /** A text option's whitespace-separated KEY=VALUE pairs, in their order (empty when not given). */
        public Map<String, String> pairs(String name) {
            Map<String, String> pairs = new LinkedHashMap<>();
            String value = text(name);
            for (String pair : value == null ? new String[0] : value.strip().split("\\s+")) {
                if (pair.isEmpty()) {
                    continue;
                }
                int equals = pair.indexOf('=');
                if (equals <= 0) {
                    throw new UsageException(name + " takes KEY=VALUE pairs separated by spaces, got '" + pair + "'");
                }
                pairs.put(pair.substring(0, equals), pair.substring(equals + 1));
            }
            return pairs;
        }
    }

    /** The body of a benchmark main, given its parsed arguments. */
    @FunctionalInterface
    public interface Body {
        void run(Arguments arguments) throws Exception;
    }

    private final String name;
    private final String synopsis;
    private final String description;
    private final Map<String, Option> options = new LinkedHashMap<>();
    private String operandName;
    private String environment = "none";

    private BenchmarkCommandLine(String name, String synopsis, String description) {
        this.name = name;
        this.synopsis = synopsis;
        this.description = description;
    }

    private BenchmarkCommandLine add(String option, Kind kind, String defaultValue, String text, List<String> choices) {
        options.put(option, new Option(option, kind, defaultValue, text, choices));
        return this;
    }

    private BenchmarkCommandLine integer(String option, String defaultValue, String text) {
        return add(option, Kind.INTEGER, defaultValue, text, List.of());
    }

    private BenchmarkCommandLine text(String option, String defaultValue, String text) {
        return add(option, Kind.TEXT, defaultValue, text, List.of());
    }

    private BenchmarkCommandLine choice(String option, String defaultValue, String text, String... choices) {
        return add(option, Kind.CHOICE, defaultValue, text, List.of(choices));
    }

    private BenchmarkCommandLine flag(String option, String text) {
        return add(option, Kind.FLAG, "false", text, List.of());
    }

    /** How a benchmark that runs graphs opens its ONNX Runtime sessions: thread counts, spinning, configuration entries. */
    private BenchmarkCommandLine sessionOptions() {
        return text("--threads", "2", "comma-separated ONNX Runtime thread counts, e.g. 1,2")
                .flag("--spinning", "let ONNX Runtime's threads spin (the engine's default is not to)")
                .text("--session-config", "", "ONNX Runtime session configuration entries beyond the engine's,"
                        + " KEY=VALUE separated by spaces (e.g. session.intra_op_thread_affinities=2)");
    }

    private BenchmarkCommandLine operands(String operand) {
        this.operandName = operand;
        return this;
    }

    private BenchmarkCommandLine environment(String variables) {
        this.environment = variables;
        return this;
    }

    /**
     * Runs a main: prints the usage and returns on {@code --help}/{@code -h}; ends the JVM with exit code 2 and
     * one line naming the option on a wrong argument, whether the parser or the body finds it.
     */
    public void run(String[] args, Body body) throws Exception {
        Arguments arguments;
        try {
            arguments = parse(args);
        } catch (UsageException wrong) {
            System.exit(reportUsageError(wrong, System.err));
            return;
        }
        if (arguments == null) {
            System.out.print(usage());
            return;
        }
        try {
            body.run(arguments);
        } catch (UsageException wrong) {
            System.exit(reportUsageError(wrong, System.err));
        }
    }

    private int reportUsageError(UsageException wrong, PrintStream err) {
        err.println(name + ": " + wrong.getMessage() + " (--help lists the options)");
        return USAGE_ERROR;
    }

    /** The parsed arguments, or null when they ask for the usage. */
    Arguments parse(String[] args) {
        for (String argument : args) {
            if (argument.equals("--help") || argument.equals("-h")) {
                return null;
            }
        }
        Map<String, String> values = new LinkedHashMap<>();
        options.values().forEach(option -> values.put(option.name(), option.defaultValue()));
        List<String> operands = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String argument = args[i];
            Option option = options.get(argument);
            if (option == null) {
                if (operandName != null && !argument.startsWith("-")) {
                    operands.add(argument);
                    continue;
                }
                throw new UsageException("unknown option '" + argument + "'");
            }
            if (option.kind() == Kind.FLAG) {
                values.put(argument, "true");
                continue;
            }
            if (i + 1 == args.length) {
                throw new UsageException(argument + " needs a value");
            }
            values.put(argument, check(option, args[++i]));
        }
        for (Option option : options.values()) {
            if (values.get(option.name()) == null) {
                throw new UsageException(option.name() + " is required");
            }
        }
        if (operandName != null && operands.isEmpty()) {
            throw new UsageException("at least one " + operandName + " is required");
        }
        return new Arguments(values, List.copyOf(operands));
    }

    private static String check(Option option, String value) {
        switch (option.kind()) {
            case INTEGER -> {
                try {
                    Integer.parseInt(value);
                } catch (NumberFormatException notAnInteger) {
                    throw new UsageException(option.name() + " needs an integer, got '" + value + "'");
                }
            }
            case CHOICE -> {
                if (!option.choices().contains(value)) {
                    throw new UsageException(option.name() + " must be " + String.join(" or ", option.choices())
                            + ", got '" + value + "'");
                }
            }
            default -> { }
        }
        return value;
    }

    /** What --help prints: what the benchmark does, its options with their defaults, the environment it reads. */
    String usage() {
        StringBuilder text = new StringBuilder("usage: ").append(synopsis).append("\n\n").append(description)
                .append("\n\noptions:\n");
        for (Option option : options.values()) {
            String value = switch (option.kind()) {
                case INTEGER -> " N";
                case TEXT -> " VALUE";
                case CHOICE -> " " + String.join("|", option.choices());
                case FLAG -> "";
            };
            String defaultText = option.kind() == Kind.FLAG || option.defaultValue() == null ? ""
                    : " (default " + option.defaultValue() + ")";
            text.append(String.format("  %-22s %s%s%n", option.name() + value, option.description(), defaultText));
        }
        text.append(String.format("  %-22s %s%n", "-h, --help", "this message"));
        text.append("environment: ").append(environment).append('\n');
        return text.toString();
    }

    /**
     * bench/lib.sh's check before a build: {@code NAME ARGS...} prints NAME's usage on --help (exit 0), one line
     * on a wrong argument (exit 2), and nothing when the arguments are fine (exit 0).
     */
    public static void main(String[] args) throws Exception {
        String wanted = args.length > 0 ? args[0] : "";
        BenchmarkCommandLine commandLine = ALL.stream().filter(candidate -> candidate.name.equals(wanted)).findFirst()
                .orElse(null);
        if (commandLine == null) {
            System.err.println("BenchmarkCommandLine: unknown benchmark '" + wanted + "'; expected one of "
                    + ALL.stream().map(candidate -> candidate.name).toList());
            System.exit(USAGE_ERROR);
            return;
        }
        String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
        commandLine.run(rest, arguments -> { });
    }
}
