package dev.loraflow.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The benchmark mains' command lines: defaults, --help, and one clear message for each kind of wrong argument. */
class BenchmarkCommandLineTest {

    private static String wrong(BenchmarkCommandLine commandLine, String... args) {
        return assertThrows(BenchmarkCommandLine.UsageException.class, () -> commandLine.parse(args)).getMessage();
    }

    @Test
    void givenValuesReplaceTheDefaults() {
        BenchmarkCommandLine.Arguments arguments = BenchmarkCommandLine.SERVING_LOAD.parse(
                new String[] {"--tokens", "32", "--device", "cuda"});
        assertEquals(32, arguments.integer("--tokens"));
        assertEquals("cuda", arguments.text("--device"));
        assertEquals(12, arguments.integer("--layers"), "the default");
        assertFalse(BenchmarkCommandLine.MERGE_THROUGHPUT.parse(new String[0]).isSet("--files"));
        assertTrue(BenchmarkCommandLine.MERGE_THROUGHPUT.parse(new String[] {"--files", "true"}).isSet("--files"));
    }

    @Test
    void helpAnywhereAsksForTheUsage() {
        assertNull(BenchmarkCommandLine.STORE_THROUGHPUT.parse(new String[] {"--rounds", "2", "--help"}));
        assertNull(BenchmarkCommandLine.STORE_THROUGHPUT.parse(new String[] {"-h"}));
        assertNull(BenchmarkCommandLine.STORE_THROUGHPUT.parse(new String[] {"--no-such-flag", "-h"}),
                "help wins over a wrong argument, as it does for the CLI");
    }

    @Test
    void theUsageNamesEveryOptionWithItsDefaultAndTheEnvironment() {
        String usage = BenchmarkCommandLine.SERVING_LOAD.usage();
        assertTrue(usage.startsWith("usage: ./loraflow bench-serving"), usage);
        for (String line : List.of("--tokens N", "(default 256)", "--device cpu|cuda", "(default cpu)", "-h, --help",
                "environment: JAVA_HOME")) {
            assertTrue(usage.contains(line), line + " missing from:\n" + usage);
        }
        String quantized = BenchmarkCommandLine.QUANTIZED_DECODE.usage();
        assertTrue(quantized.contains("--spinning") && quantized.contains("LABEL=FILE.onnx"), quantized);
    }

    @Test
    void eachWrongArgumentIsNamed() {
        BenchmarkCommandLine serving = BenchmarkCommandLine.SERVING_LOAD;
        assertEquals("unknown option '--no-such-flag'", wrong(serving, "--no-such-flag"));
        assertEquals("--tokens needs a value", wrong(serving, "--layers", "2", "--tokens"));
        assertEquals("--tokens needs an integer, got 'many'", wrong(serving, "--tokens", "many"));
        assertEquals("--device must be cpu or cuda, got 'gpu'", wrong(serving, "--device", "gpu"));
        assertEquals("unknown option 'extra'", wrong(serving, "extra"), "ServingLoad takes no operands");
        assertEquals("--files must be true or false, got 'yes'",
                wrong(BenchmarkCommandLine.MERGE_THROUGHPUT, "--files", "yes"));
    }

    @Test
    void quantizedDecodeNeedsItsConfigAndAGraph() {
        BenchmarkCommandLine decode = BenchmarkCommandLine.QUANTIZED_DECODE;
        assertEquals("--config is required", wrong(decode, "f32=model.onnx"));
        assertEquals("at least one LABEL=FILE.onnx is required", wrong(decode, "--config", "config.json"));
        BenchmarkCommandLine.Arguments arguments = decode.parse(
                new String[] {"--config", "config.json", "--spinning", "f32=a.onnx", "int8=b.onnx"});
        assertTrue(arguments.isSet("--spinning"));
        assertFalse(arguments.isSet("--profile"));
        assertEquals(List.of("f32=a.onnx", "int8=b.onnx"), arguments.operands());
    }

    @Test
    void sessionConfigIsKeyValuePairs() {
        BenchmarkCommandLine.Arguments arguments = BenchmarkCommandLine.QUANTIZED_DECODE.parse(new String[] {"--config",
                "config.json", "--interleave", "--session-config",
                " session.intra_op_thread_affinities=1,2;3  session.dynamic_block_base=4", "int4=a.onnx"});
        assertEquals(Map.of("session.intra_op_thread_affinities", "1,2;3", "session.dynamic_block_base", "4"),
                arguments.pairs("--session-config"), "split at spaces, each at its first '='");
        assertTrue(arguments.isSet("--interleave"));
        assertEquals(Map.of(), BenchmarkCommandLine.GRAPH_RUNS.parse(new String[] {"m=a.onnx"}).pairs("--session-config"));
        BenchmarkCommandLine.Arguments bad = BenchmarkCommandLine.GRAPH_RUNS.parse(
                new String[] {"--session-config", "session.dynamic_block_base", "m=a.onnx"});
        assertEquals("--session-config takes KEY=VALUE pairs separated by spaces, got 'session.dynamic_block_base'",
                assertThrows(BenchmarkCommandLine.UsageException.class, () -> bad.pairs("--session-config")).getMessage());
        assertEquals("at least one LABEL=FILE.onnx is required", wrong(BenchmarkCommandLine.GRAPH_RUNS, "--runs", "4"));
        assertEquals("--runs needs an integer, got 'all'", wrong(BenchmarkCommandLine.GRAPH_RUNS, "--runs", "all", "m=a.onnx"));
    }
}
