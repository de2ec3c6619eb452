package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The commands end to end on a generated model, in this JVM and, for resume, in fresh ones. */
class MainTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path temp;
    static Path model;
    static Path data;

    record Run(int exitCode, String out, String err) {
        JsonNode json() throws IOException {
            String[] lines = out.strip().split("\n");
            return JSON.readTree(lines[lines.length - 1]);
        }
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    @BeforeAll
    static void generatedModelAndData() throws IOException {
        model = temp.resolve("base");
        Run init = run("init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "32", "--heads", "4", "--vocab", "300",
                "--context", "32", "--seed", "1", "--out", model.toString());
        assertEquals(0, init.exitCode(), init.err());
        assertTrue(Files.exists(model.resolve("tokenizer.json")), "vocab ≥ 257 gets a byte-level tokenizer");
        data = temp.resolve("train.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            lines.add("{\"prompt\": \"n" + i + " =\", \"completion\": \" " + "ab".repeat(1 + i % 3) + "\"}");
            lines.add("{\"input_ids\": [" + (i + 1) + ", " + (i + 2) + ", " + (i + 3) + ", " + (i + 4) + "]}");
        }
        Files.write(data, lines);
    }

    @Test
    void trainEvalAndGenerateWorkOnAGeneratedModel() throws IOException {
        Path adapter = temp.resolve("adapter");
        Run train = run("train", "--base", model.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "4", "--batch-size", "2", "--seq-len", "16", "--rank", "4", "--lr", "1e-2");
        assertEquals(0, train.exitCode(), train.err());
        assertEquals(4, train.json().get("steps").asInt());
        assertTrue(train.err().contains("step 4/4"), train.err());
        assertTrue(Files.exists(adapter.resolve("adapter_config.json")));
        assertTrue(Files.exists(adapter.resolve("adapter_model.safetensors")));

        Run base = run("eval", "--model", model.toString(), "--data", data.toString());
        Run adapted = run("eval", "--model", model.toString(), "--adapter", adapter.toString(), "--data", data.toString());
        assertEquals(0, base.exitCode(), base.err());
        assertEquals(0, adapted.exitCode(), adapted.err());
        assertEquals(base.json().get("tokens").asLong(), adapted.json().get("tokens").asLong());
        assertTrue(base.json().get("tokens").asLong() > 0);
        assertTrue(adapted.json().get("loss").asDouble() < base.json().get("loss").asDouble(),
                "training lowered the loss: " + base.out() + " vs " + adapted.out());

        Run greedy = run("generate", "--model", model.toString(), "--adapter", adapter.toString(), "--prompt", "n1 =",
                "--max-new-tokens", "5");
        assertEquals(0, greedy.exitCode(), greedy.err());
        JsonNode result = greedy.json();
        assertTrue(result.get("ids").size() >= 1 && result.get("ids").size() <= 5, greedy.out());
        assertTrue(result.has("text"));
        Run byIds = run("generate", "--model", model.toString(), "--adapter", adapter.toString(), "--prompt-ids",
                "110,49,32,61", "--max-new-tokens", "5");
        assertEquals(result.get("prompt_ids"), byIds.json().get("prompt_ids"), "the text is the bytes n, 1, space, =");
        assertEquals(result.get("ids"), byIds.json().get("ids"));
        Run sampled = run("generate", "--model", model.toString(), "--prompt-ids", "1,2,3", "--max-new-tokens", "6",
                "--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "5");
        assertEquals(0, sampled.exitCode(), sampled.err());
        assertEquals(sampled.out(), run("generate", "--model", model.toString(), "--prompt-ids", "1,2,3",
                "--max-new-tokens", "6", "--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "5").out());
    }

    @Test
    void helpWorksAndWrongArgumentsExitWithTwo() {
        for (String command : List.of("init-model", "train", "eval", "generate")) {
            Run help = run(command, "--help");
            assertEquals(0, help.exitCode());
            assertTrue(help.out().contains("Usage: loraflow " + command), help.out());
        }
        assertEquals(2, run().exitCode());
        assertEquals(2, run("frobnicate").exitCode());
        assertEquals(2, run("train", "--base", model.toString()).exitCode(), "missing --data and --out");
        assertEquals(2, run("train", "--base", model.toString(), "--data", data.toString(), "--out", "x", "--steps", "0")
                .exitCode());
        assertEquals(2, run("train", "--base", model.toString(), "--data", data.toString(), "--out", "x", "--schedule",
                "linear").exitCode());
        assertEquals(2, run("generate", "--model", model.toString(), "--prompt", "a", "--prompt-ids", "1",
                "--max-new-tokens", "1").exitCode(), "one prompt only");
        assertEquals(2, run("generate", "--model", model.toString(), "--prompt-ids", "x", "--max-new-tokens", "1")
                .exitCode());
        assertEquals(2, run("generate", "--model", model.toString(), "--prompt-ids", "1", "--max-new-tokens", "2",
                "--top-p", "0").exitCode());
        assertEquals(2, run("init-model", "--arch", "bert", "--layers", "1", "--hidden", "8", "--heads", "2", "--vocab",
                "10", "--context", "8", "--out", temp.resolve("bert").toString()).exitCode());
        assertEquals(2, run("init-model", "--arch", "gpt2", "--layers", "1", "--hidden", "9", "--heads", "2", "--vocab",
                "10", "--context", "8", "--out", temp.resolve("odd").toString()).exitCode());
    }

    /** picocli formats descriptions with String.format: a bare "%" prints a warning on System.err instead of the text. */
    @Test
    void everyCommandsHelpFormatsWithoutPicocliWarnings() {
        PrintStream stderr = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            for (String command : new CommandLine(new Main()).getSubcommands().keySet()) {
                assertEquals(0, run(command, "--help").exitCode(), command);
            }
        } finally {
            System.setErr(stderr);
        }
        assertEquals("", captured.toString(StandardCharsets.UTF_8));
    }

    @Test
    void badDataAndMissingFilesFailWithAOneLineMessage() throws IOException {
        Path bad = temp.resolve("bad.jsonl");
        Files.writeString(bad, "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 99999]}\n");
        Run eval = run("eval", "--model", model.toString(), "--data", bad.toString());
        assertEquals(1, eval.exitCode());
        assertTrue(eval.err().contains(":2"), "names the line: " + eval.err());
        assertFalse(eval.err().contains("\tat "), "no stack trace: " + eval.err());

        Run missing = run("eval", "--model", temp.resolve("nowhere").toString(), "--data", data.toString());
        assertEquals(1, missing.exitCode());
        assertTrue(missing.err().contains("nowhere"), missing.err());
        // a file the command opens says what is wrong with it, not its path alone
        Run noData = run("eval", "--model", model.toString(), "--data", temp.resolve("none.jsonl").toString());
        assertEquals(1, noData.exitCode());
        assertEquals("loraflow eval: no such file or directory: " + temp.resolve("none.jsonl"), noData.err().strip());

        Path adapter = temp.resolve("twice");
        assertEquals(0, run("train", "--base", model.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "1", "--seq-len", "8").exitCode());
        Run again = run("train", "--base", model.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "1", "--seq-len", "8");
        assertEquals(1, again.exitCode());
        assertTrue(again.err().contains("--resume"), again.err());

        Path otherBase = temp.resolve("other-base");
        assertEquals(0, run("init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "32", "--heads", "4", "--vocab",
                "300", "--context", "32", "--seed", "2", "--out", otherBase.toString()).exitCode());
        byte[] state = Files.readAllBytes(adapter.resolve("trainer_state.json"));
        Run elsewhere = run("train", "--base", otherBase.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "2", "--seq-len", "8", "--resume");
        assertEquals(1, elsewhere.exitCode());
        assertTrue(elsewhere.err().strip().lines().toList().getLast().contains("resume the run on the base it started on"),
                elsewhere.err());
        assertFalse(elsewhere.err().contains("\tat "), "no stack trace: " + elsewhere.err());
        assertArrayEquals(state, Files.readAllBytes(adapter.resolve("trainer_state.json")), "the checkpoint stays");
    }

    /** Each run in its own JVM, so that a resumed process starts cold as after a crash. */
    @Test
    void aResumedRunInANewProcessWritesTheSameAdapterBytes() throws Exception {
        Path straight = temp.resolve("straight");
        Path resumed = temp.resolve("resumed");
        List<String> common = List.of("train", "--base", model.toString(), "--data", data.toString(), "--steps", "6",
                "--batch-size", "2", "--seq-len", "16", "--grad-accum", "2", "--warmup-steps", "2", "--dropout", "0.1",
                "--lr", "5e-3", "--targets", "all-linear");
        runJvm(common, "--out", straight.toString());
        runJvm(common, "--out", resumed.toString(), "--until-step", "3");
        assertEquals(3, JSON.readTree(resumed.resolve("trainer_state.json").toFile()).get("step").asInt());
        runJvm(common, "--out", resumed.toString(), "--resume");
        for (String file : List.of("adapter_model.safetensors", "optimizer.safetensors", "adapter_config.json",
                "trainer_state.json")) {
            assertArrayEquals(Files.readAllBytes(straight.resolve(file)), Files.readAllBytes(resumed.resolve(file)), file);
        }
    }

    private static void runJvm(List<String> args, String... more) throws Exception {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        command.addAll(args);
        command.addAll(List.of(more));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] output = process.getInputStream().readAllBytes();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }
}
