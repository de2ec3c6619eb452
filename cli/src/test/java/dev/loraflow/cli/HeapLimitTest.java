package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train} in a JVM whose heap (-Xmx96m) is smaller than the base's float32 weights (~120 MB): a
 * BF16 checkpoint trains, its linear weights mapped from the file, and exports to a float32 ONNX graph
 * larger than the heap; the same model stored in F32, which would have to sit on the heap, is refused
 * before loading, in one line.
 */
class HeapLimitTest {

    private static final String HEAP = "-Xmx96m";

    @TempDir
    Path temp;

    @Test
    void aBf16BaseLargerThanTheHeapInFloat32TrainsAndAnF32OneIsRefusedInOneLine() throws Exception {
        Path data = temp.resolve("data.jsonl");
        StringBuilder lines = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            lines.append("{\"input_ids\": [").append(i).append(", 5, 9, 14, 20, 3, 7, 11]}\n");
        }
        Files.writeString(data, lines);
        Path bf16 = llama("bf16", "bf16", 8, 512, 8, 1536, 64, 32);
        Path f32 = llama("f32", "f32", 8, 512, 8, 1536, 64, 32);
        long f32Bytes = Files.size(f32.resolve("model.safetensors"));
        assertTrue(f32Bytes > 96L << 20, "the float32 weights (" + f32Bytes + " bytes) must not fit the heap");

        List<String> train = List.of("train", "--data", data.toString(), "--steps", "2", "--batch-size", "2",
                "--seq-len", "8", "--targets", "q_proj,v_proj");
        Result trained = run(List.of(HEAP), train, "--base", bf16.toString(), "--out", temp.resolve("adapter").toString());
        assertEquals(0, trained.exitCode, trained.output);
        assertEquals(2, new ObjectMapper().readTree(trained.output.lines().filter(line -> line.startsWith("{"))
                .reduce((a, b) -> b).orElseThrow()).get("steps").asInt());

        // The export streams too: mapped BF16 weights widened and each adapted module merged as it is written.
        Path onnx = temp.resolve("onnx").resolve("model.onnx");
        Result exported = run(List.of(HEAP), List.of("export-onnx", "--model", bf16.toString(), "--adapter",
                temp.resolve("adapter").toString(), "--out", onnx.toString()));
        assertEquals(0, exported.exitCode, exported.output);
        assertTrue(Files.size(onnx) > f32Bytes, "the float32 graph is larger than the heap: " + Files.size(onnx));
        assertTrue(exported.output.contains("loraflow export-onnx: writing about "), exported.output);

        Result refused = run(List.of(HEAP), train, "--base", f32.toString(), "--out", temp.resolve("refused").toString());
        assertEquals(1, refused.exitCode, refused.output);
        String message = refused.output.lines().filter(line -> line.startsWith("loraflow train:")).findFirst().orElseThrow();
        assertTrue(message.contains("needs about") && message.contains("of Java heap") && message.contains("--quantize nf4"),
                message);
        assertFalse(refused.output.contains("OutOfMemoryError") || refused.output.contains("\tat "), refused.output);
        assertFalse(Files.exists(temp.resolve("refused").resolve("adapter_model.safetensors")));
    }

    @Test
    void evalKeepsOneBlocksActivationsAndABatchThatCannotFitIsRefusedInOneLine() throws Exception {
        // 8 sequences of 512 tokens through 8 blocks: every block's activations kept would need about 2 GB, one
        // block's with what a backward keeps about 0.5 GB, the forward's alone (one block's, the residual entering
        // and leaving it) 0.17 GB
        Path model = llama("bf16", "bf16", 8, 512, 8, 1536, 64, 512);
        Path data = IdLines.write(temp.resolve("data.jsonl"), 8, i -> 512, 64);
        List<String> eval = List.of("eval", "--model", model.toString(), "--data", data.toString());

        Result evaluated = run(List.of("-Xmx320m"), eval);
        assertEquals(0, evaluated.exitCode, evaluated.output);
        assertEquals(8 * 511, new ObjectMapper().readTree(evaluated.output.lines().filter(line -> line.startsWith("{"))
                .findFirst().orElseThrow()).get("tokens").asInt());

        Result refused = run(List.of("-Xmx160m"), eval);
        assertEquals(1, refused.exitCode, refused.output);
        String message = refused.output.lines().filter(line -> line.startsWith("loraflow eval:")).findFirst().orElseThrow();
        assertTrue(message.contains("needs about") && message.contains("of Java heap") && message.contains("--batch-size")
                && !message.contains("bf16"), message);
        assertFalse(refused.output.contains("OutOfMemoryError") || refused.output.contains("\tat "), refused.output);
        assertEquals(0, run(List.of("-Xmx160m"), eval, "--batch-size", "2").exitCode, "two sequences at a time fit");
    }

    @Test
    void verifyDataWhoseForwardCannotFitTheHeapIsRefusedInOneLineBeforeTheExport() throws Exception {
        // a 32,000-token vocabulary: 8 held-out sequences of 4,096 tokens have 4.2 GB of logits
        Path model = llama("long", "bf16", 1, 64, 2, 128, 32000, 4096);
        Path heldOut = IdLines.write(temp.resolve("heldout.jsonl"), 8, i -> 4096, 32000);
        Path onnx = temp.resolve("onnx").resolve("model.onnx");

        Result refused = run(List.of("-Xmx512m"), List.of("export-onnx", "--model", model.toString(), "--quantize", "int8",
                "--verify", "--verify-data", heldOut.toString(), "--out", onnx.toString()));

        assertEquals(1, refused.exitCode, refused.output);
        String message = refused.output.lines().filter(line -> line.startsWith("loraflow export-onnx: needs about"))
                .findFirst().orElseThrow(() -> new AssertionError(refused.output));
        assertTrue(message.contains("of Java heap") && message.contains("shorter --verify-data examples"), message);
        assertFalse(refused.output.contains("writing under"), "refused before the export: " + refused.output);
        assertFalse(refused.output.contains("OutOfMemoryError") || refused.output.contains("\tat "), refused.output);
        assertFalse(Files.exists(onnx), "nothing exported");
    }

    /** A random Llama checkpoint of this shape in {@code dtype} ({@code init-model}, seed 1), in temp/{@code name}. */
    private Path llama(String name, String dtype, int layers, int hidden, int heads, int intermediate, int vocab,
                       int context) throws Exception {
        Path model = temp.resolve(name);
        Result made = run(List.of(), List.of("init-model", "--arch", "llama", "--layers", "" + layers, "--hidden",
                "" + hidden, "--heads", "" + heads, "--intermediate", "" + intermediate, "--vocab", "" + vocab,
                "--context", "" + context, "--seed", "1", "--dtype", dtype, "--out", model.toString()));
        assertEquals(0, made.exitCode, made.output);
        return model;
    }

    record Result(int exitCode, String output) {}

    /** Runs the CLI in a JVM of its own, started with {@code jvmOptions}. */
    static Result run(List<String> jvmOptions, List<String> args, String... more) throws Exception {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
        command.addAll(args);
        command.addAll(List.of(more));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(300, TimeUnit.SECONDS));
        return new Result(process.exitValue(), output);
    }
}
