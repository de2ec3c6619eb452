package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.cli.MainTest.Run;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * generate --model FILE.onnx (the inference engine over the exported graph) against generate --model on the
 * Hugging Face directory it was exported from (core's Java decoder): the same JSON line, token for token.
 */
class GenerateWithEngineTest {

    private static final int CONTEXT = 32;

    @TempDir
    Path temp;

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama"})
    void theExportedGraphGeneratesWhatTheJavaDecoderGenerates(String arch) throws IOException {
        Path base = temp.resolve("base");
        Run init = MainTest.run("init-model", "--arch", arch, "--layers", "2", "--hidden", "32", "--heads", "4",
                "--vocab", "257", "--context", Integer.toString(CONTEXT), "--seed", "3", "--out", base.toString());
        assertEquals(0, init.exitCode(), init.err());
        Path data = temp.resolve("train.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            lines.add("{\"text\": \"n" + i + " = " + "ab".repeat(1 + i % 3) + "\"}");
        }
        Files.write(data, lines);
        Path adapter = temp.resolve("adapter");
        Run train = MainTest.run("train", "--base", base.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "4", "--batch-size", "2", "--seq-len", "12", "--rank", "4", "--lr", "5e-2");
        assertEquals(0, train.exitCode(), train.err());

        Path exported = export(base, "exported/model.onnx");
        Path unmerged = export(base, "unmerged/model.onnx", "--adapter", adapter.toString(), "--unmerged");
        Path merged = export(base, "merged/model.onnx", "--adapter", adapter.toString());

        // Greedy until the context is full: every position of the graph's KV cache is used.
        Run java = generate("--model", base.toString(), "--prompt", "n1 =", "--max-new-tokens", "64");
        JsonNode line = java.json();
        assertEquals(CONTEXT - line.get("prompt_ids").size(), line.get("ids").size(), java.out());
        assertEquals("length", line.get("finish_reason").asText());
        assertEquals(java.out(), generate("--model", exported.toString(), "--prompt", "n1 =", "--max-new-tokens", "64").out());
        assertEquals(java.out(), generate("--model", exported.getParent().toString(), "--prompt", "n1 =",
                "--max-new-tokens", "64").out(), "a directory holding one .onnx file");

        Run adapted = generate("--model", base.toString(), "--adapter", adapter.toString(), "--prompt-ids", "110,49,32,61",
                "--max-new-tokens", "20");
        assertNotEquals(generate("--model", base.toString(), "--prompt-ids", "110,49,32,61", "--max-new-tokens", "20")
                .json().get("ids"), adapted.json().get("ids"), "the trained adapter changes the greedy tokens");
        assertEquals(adapted.out(), generate("--model", unmerged.toString(), "--adapter", adapter.toString(),
                "--prompt-ids", "110,49,32,61", "--max-new-tokens", "20").out(), "LoRA inputs fed by the engine");
        assertEquals(adapted.out(), generate("--model", merged.toString(), "--prompt-ids", "110,49,32,61",
                "--max-new-tokens", "20").out(), "the adapter merged into the graph");

        String[] sampling = {"--prompt", "ab", "--max-new-tokens", "12", "--temperature", "0.9", "--top-k", "40",
                "--top-p", "0.95", "--seed", "11"};
        assertEquals(generate(prepend(sampling, "--model", base.toString())).out(),
                generate(prepend(sampling, "--model", exported.toString())).out(), "one sampler, one seed");
    }

    @Test
    void wrongModelsAreRefusedInOneLine() throws IOException {
        Path base = temp.resolve("base");
        assertEquals(0, MainTest.run("init-model", "--arch", "gpt2", "--layers", "1", "--hidden", "32", "--heads", "4",
                "--vocab", "300", "--context", "16", "--out", base.toString()).exitCode());
        Path onnx = export(base, "exported/model.onnx");

        Path adapter = temp.resolve("adapter");
        Files.writeString(temp.resolve("data.jsonl"), "{\"input_ids\": [1, 2, 3, 4]}\n");
        assertEquals(0, MainTest.run("train", "--base", base.toString(), "--data", temp.resolve("data.jsonl").toString(),
                "--out", adapter.toString(), "--steps", "1", "--batch-size", "1", "--seq-len", "4").exitCode());
        Run adapterOnMerged = MainTest.run("generate", "--model", onnx.toString(), "--adapter", adapter.toString(),
                "--prompt-ids", "1", "--max-new-tokens", "2");
        assertEquals(1, adapterOnMerged.exitCode(), adapterOnMerged.err());
        assertTrue(adapterOnMerged.err().contains("adapters need an un-merged export"), adapterOnMerged.err());
        assertEquals(1, adapterOnMerged.err().strip().lines().count(), adapterOnMerged.err());

        Run missing = MainTest.run("generate", "--model", temp.resolve("none.onnx").toString(), "--prompt-ids", "1",
                "--max-new-tokens", "2");
        assertEquals(2, missing.exitCode(), missing.err());
        assertTrue(missing.err().contains("none.onnx: no such file"), missing.err());

        Files.copy(onnx, onnx.resolveSibling("copy.onnx"));
        Run several = MainTest.run("generate", "--model", onnx.getParent().toString(), "--prompt-ids", "1",
                "--max-new-tokens", "2");
        assertEquals(2, several.exitCode(), several.err());
        assertTrue(several.err().contains("several .onnx files [copy.onnx, model.onnx]"), several.err());
    }

    private Path export(Path base, String out, String... options) {
        Path onnx = temp.resolve(out);
        List<String> args = new ArrayList<>(List.of("export-onnx", "--model", base.toString(), "--out", onnx.toString()));
        args.addAll(List.of(options));
        Run export = MainTest.run(args.toArray(String[]::new));
        assertEquals(0, export.exitCode(), export.err());
        assertTrue(Files.isRegularFile(onnx.resolveSibling("config.json")), "config.json beside the graph");
        assertTrue(Files.isRegularFile(onnx.resolveSibling("tokenizer.json")), "tokenizer.json beside the graph");
        return onnx;
    }

    private static Run generate(String... args) {
        Run run = MainTest.run(prepend(args, "generate"));
        assertEquals(0, run.exitCode(), run.err());
        return run;
    }

    private static String[] prepend(String[] args, String... first) {
        List<String> all = new ArrayList<>(List.of(first));
        all.addAll(List.of(args));
        return all.toArray(String[]::new);
    }
}
