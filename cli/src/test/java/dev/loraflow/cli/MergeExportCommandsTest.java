package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.cli.MainTest.Run;
import dev.loraflow.core.model.ModelDigest;
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
    /** The base digest the train command reported. */
    static String trainedOn;

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
        trainedOn = train.json().get("base_sha256").asText();
    }

    @Test
    void aTrainedAdapterRecordsItsBaseSoMergeChecksItInOnePassAndRefusesAnotherBase() throws IOException {
        assertEquals(ModelDigest.of(base), trainedOn, "train records the digest of the base it loaded");
        Run merge = MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out",
                temp.resolve("one-pass").toString());
        assertEquals(0, merge.exitCode(), merge.err());
        JsonNode result = merge.json();
        assertEquals(1, result.get("base_passes").asInt(), "hashed from the reads that merge it: " + merge.out());
        assertEquals(adapter.resolve("trainer_state.json").toString(), result.get("base_sha256_expected_from").asText());
        assertEquals(trainedOn, result.get("base_sha256").asText());

        // the same base with one weight's last byte changed
        Path tampered = Files.createDirectories(temp.resolve("tampered-base"));
        try (var files = Files.list(base)) {
            for (Path file : files.toList()) {
                Files.copy(file, tampered.resolve(file.getFileName()));
            }
        }
        Path weights = tampered.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(weights);
        bytes[bytes.length - 1] ^= 1;
        Files.write(weights, bytes);
        Path refusedOut = temp.resolve("refused");
        Run refused = MainTest.run("merge", "--base", tampered.toString(), "--adapter", adapter.toString(), "--out",
                refusedOut.toString());
        assertEquals(1, refused.exitCode(), refused.out());
        assertTrue(refused.err().contains(trainedOn) && refused.err().strip().lines().count() == 1, refused.err());
        assertFalse(Files.exists(refusedOut), "nothing is left of a merge into the wrong base");

        // a plain PEFT adapter records no base: the base is hashed in a pass of its own
        Path plain = Files.createDirectories(temp.resolve("plain-adapter"));
        for (String file : List.of("adapter_config.json", "adapter_model.safetensors")) {
            Files.copy(adapter.resolve(file), plain.resolve(file));
        }
        Run twoPasses = MainTest.run("merge", "--base", tampered.toString(), "--adapter", plain.toString(), "--out",
                temp.resolve("two-passes").toString());
        assertEquals(0, twoPasses.exitCode(), twoPasses.err());
        assertEquals(2, twoPasses.json().get("base_passes").asInt());
        assertTrue(twoPasses.json().get("base_sha256_expected_from").isNull());
        assertEquals(ModelDigest.of(tampered), twoPasses.json().get("base_sha256").asText());
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
