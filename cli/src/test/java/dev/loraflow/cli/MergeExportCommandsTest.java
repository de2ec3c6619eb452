package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.cli.MainTest.Run;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** merge and export-onnx on a generated GPT-2 and an adapter trained by the train command. */
class MergeExportCommandsTest {

    @TempDir
    static Path temp;
    static Path base;
    static Path adapter;
    static Path data;

    @BeforeAll
    static void baseAndTrainedAdapter() throws IOException {
        base = temp.resolve("base");
        Run init = MainTest.run("init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "32", "--heads", "4", "--vocab",
                "300", "--context", "32", "--seed", "1", "--out", base.toString());
        assertEquals(0, init.exitCode(), init.err());
        data = temp.resolve("train.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            lines.add("{\"input_ids\": [" + (i + 1) + ", " + (i + 2) + ", " + (i + 3) + ", " + (i + 4) + ", " + (i + 5) + "]}");
        }
        Files.write(data, lines);
        adapter = temp.resolve("adapter");
        Run train = MainTest.run("train", "--base", base.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "3", "--batch-size", "2", "--seq-len", "8", "--rank", "4", "--lr", "5e-2", "--targets",
                "c_attn,c_proj,c_fc");
        assertEquals(0, train.exitCode(), train.err());
    }

    @Test
    void theMergedModelEvaluatesAsTheBaseWithItsAdapter() throws IOException {
        Path merged = temp.resolve("merged");
        Run merge = MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out", merged.toString());
        assertEquals(0, merge.exitCode(), merge.err());
        JsonNode result = merge.json();
        assertEquals(8, result.get("modules").asInt(), "c_attn, attn.c_proj, c_fc and mlp.c_proj of 2 layers");
        assertTrue(Files.exists(merged.resolve("tokenizer.json")), "tokenizer files come along");

        Run withAdapter = MainTest.run("eval", "--model", base.toString(), "--adapter", adapter.toString(), "--data", data.toString());
        Run mergedEval = MainTest.run("eval", "--model", merged.toString(), "--data", data.toString());
        Run baseEval = MainTest.run("eval", "--model", base.toString(), "--data", data.toString());
        double expected = withAdapter.json().get("loss").asDouble();
        assertEquals(expected, mergedEval.json().get("loss").asDouble(), 1e-5 * expected, mergedEval.out());
        assertTrue(Math.abs(baseEval.json().get("loss").asDouble() - expected) > 1e-3, "the adapter matters");

        Path bf16 = temp.resolve("merged-bf16");
        assertEquals(0, MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out",
                bf16.toString(), "--dtype", "bf16").exitCode());
        try (SafetensorsFile file = SafetensorsFile.open(bf16.resolve("model.safetensors"))) {
            for (TensorInfo tensor : file.tensors()) {
                assertEquals(DType.BF16, tensor.dtype(), tensor.name());
            }
        }
    }

    @Test
    void exportsMergedAndUnmergedGraphsThatOnnxRuntimeVerifies() throws IOException {
        Path merged = temp.resolve("export").resolve("merged.onnx");
        Run mergedExport = MainTest.run("export-onnx", "--model", base.toString(), "--adapter", adapter.toString(), "--out",
                merged.toString(), "--verify");
        assertEquals(0, mergedExport.exitCode(), mergedExport.err());
        assertTrue(mergedExport.json().get("verified").asBoolean());
        assertTrue(mergedExport.json().get("merged").asBoolean());
        assertTrue(Files.size(merged) > 0);

        Path unmerged = temp.resolve("export").resolve("unmerged.onnx");
        Run unmergedExport = MainTest.run("export-onnx", "--model", base.toString(), "--adapter", adapter.toString(),
                "--unmerged", "--opset", "18", "--out", unmerged.toString(), "--verify");
        assertEquals(0, unmergedExport.exitCode(), unmergedExport.err());
        assertEquals(3 * 8, unmergedExport.json().get("lora_inputs").asInt(), "A, B and scaling per adapted module");
        assertTrue(unmergedExport.json().get("verified").asBoolean());
    }

    @Test
    void wrongArgumentsExitWithTwoAndFailuresWithOneLine() throws IOException {
        for (String command : List.of("merge", "export-onnx")) {
            Run help = MainTest.run(command, "--help");
            assertEquals(0, help.exitCode());
            assertTrue(help.out().contains("Usage: loraflow " + command), help.out());
        }
        String out = temp.resolve("never").toString();
        assertEquals(2, MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString()).exitCode(), "no --out");
        assertEquals(2, MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out", out,
                "--dtype", "f8").exitCode());
        assertEquals(2, MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out", out,
                "--base-sha256", "xyz").exitCode());
        assertEquals(2, MainTest.run("export-onnx", "--model", base.toString(), "--opset", "99", "--out", out + ".onnx").exitCode());
        assertEquals(2, MainTest.run("export-onnx", "--model", base.toString(), "--unmerged", "--out", out + ".onnx").exitCode());
        assertEquals(2, MainTest.run("export-onnx", "--model", base.toString(), "--out", out).exitCode(), "not a .onnx name");

        Run wrongBase = MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out", out,
                "--base-sha256", "0".repeat(64));
        assertEquals(1, wrongBase.exitCode());
        assertTrue(wrongBase.err().contains("SHA-256") && wrongBase.err().strip().lines().count() == 1, wrongBase.err());
        assertFalse(Files.exists(Path.of(out)), "nothing is written when a check fails");

        Path llama = temp.resolve("llama");
        assertEquals(0, MainTest.run("init-model", "--arch", "llama", "--layers", "1", "--hidden", "32", "--heads", "4",
                "--vocab", "300", "--context", "32", "--out", llama.toString()).exitCode());
        Run wrongArchitecture = MainTest.run("merge", "--base", llama.toString(), "--adapter", adapter.toString(), "--out", out);
        assertEquals(1, wrongArchitecture.exitCode());
        assertTrue(wrongArchitecture.err().contains("transformer.h.0.attn.c_attn"), wrongArchitecture.err());
        assertFalse(wrongArchitecture.err().contains("\tat "), "no stack trace: " + wrongArchitecture.err());

        Path occupied = Files.createDirectories(temp.resolve("occupied"));
        Files.writeString(occupied.resolve("keep.txt"), "mine");
        Run overwrite = MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out",
                occupied.toString());
        assertEquals(1, overwrite.exitCode());
        assertTrue(overwrite.err().contains("not empty"), overwrite.err());
    }
}
