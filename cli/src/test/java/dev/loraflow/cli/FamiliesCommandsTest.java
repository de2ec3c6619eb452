package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.cli.MainTest.Run;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Every decoder family through the local commands as the README runs them: init-model → train → generate → merge → export-onnx. */
class FamiliesCommandsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path temp;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"llama, f32", "qwen2, bf16", "mistral, f32", "gemma, f16", "gemma2, f32", "phi3, bf16"})
    void initTrainGenerateMergeExport(String arch, String dtype) throws IOException {
        Path base = temp.resolve("base");
        Run init = MainTest.run("init-model", "--arch", arch, "--layers", "2", "--hidden", "32", "--heads", "4",
                "--kv-heads", "2", "--vocab", "600", "--context", "64", "--dtype", dtype, "--seed", "1",
                "--out", base.toString());
        assertEquals(0, init.exitCode(), init.err());
        assertTrue(init.json().get("tokenizer").asBoolean(), init.out());
        JsonNode config = JSON.readTree(base.resolve("config.json").toFile());
        assertEquals(arch, config.get("model_type").asText());
        try (SafetensorsFile weights = SafetensorsFile.open(base.resolve("model.safetensors"))) {
            for (TensorInfo tensor : weights.tensors()) {
                assertEquals(DType.valueOf(dtype.toUpperCase()), tensor.dtype(), tensor.name());
            }
        }

        Path data = temp.resolve("train.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            lines.add("{\"prompt\": \"say " + i + ":\", \"completion\": \" hello world\"}");
        }
        Files.write(data, lines);
        Path adapter = temp.resolve("adapter");
        Run train = MainTest.run("train", "--base", base.toString(), "--data", data.toString(), "--out", adapter.toString(),
                "--steps", "3", "--batch-size", "2", "--seq-len", "16", "--rank", "4", "--lr", "5e-2", "--targets",
                "all-linear");
        assertEquals(0, train.exitCode(), train.err());

        // Sampling over the whole vocabulary: every id the model may draw decodes through its tokenizer.
        Run sampled = MainTest.run("generate", "--model", base.toString(), "--adapter", adapter.toString(), "--prompt",
                "say 1:", "--max-new-tokens", "12", "--temperature", "5", "--seed", "3");
        assertEquals(0, sampled.exitCode(), sampled.err());
        assertTrue(sampled.json().has("text"), sampled.out());

        Path merged = temp.resolve("merged");
        Run merge = MainTest.run("merge", "--base", base.toString(), "--adapter", adapter.toString(), "--out",
                merged.toString());
        assertEquals(0, merge.exitCode(), merge.err());
        Run javaGreedy = MainTest.run("generate", "--model", merged.toString(), "--prompt", "say 2:", "--max-new-tokens", "6");
        assertEquals(0, javaGreedy.exitCode(), javaGreedy.err());

        Path onnx = temp.resolve("export").resolve("model.onnx");
        Run export = MainTest.run("export-onnx", "--model", merged.toString(), "--out", onnx.toString(), "--verify");
        assertEquals(0, export.exitCode(), export.err());
        Run onnxGreedy = MainTest.run("generate", "--model", onnx.toString(), "--prompt", "say 2:", "--max-new-tokens", "6");
        assertEquals(0, onnxGreedy.exitCode(), onnxGreedy.err());
        assertEquals(javaGreedy.json().get("ids"), onnxGreedy.json().get("ids"), arch + ": ONNX Runtime generates as Java");
    }

    @Test
    void aLargeVocabularyGetsATokenizerThatDecodesEveryId() throws IOException {
        Path base = temp.resolve("llama-32k");
        Run init = MainTest.run("init-model", "--arch", "llama", "--layers", "1", "--hidden", "16", "--heads", "2",
                "--vocab", "32000", "--context", "32", "--out", base.toString());
        assertEquals(0, init.exitCode(), init.err());
        Run sampled = MainTest.run("generate", "--model", base.toString(), "--prompt", "hi", "--max-new-tokens", "16",
                "--temperature", "5", "--seed", "1");
        assertEquals(0, sampled.exitCode(), sampled.err());
        for (JsonNode id : sampled.json().get("ids")) {
            assertTrue(id.asInt() >= 0 && id.asInt() < 32000);
        }

        Path noTokenizer = temp.resolve("tiny-vocab");
        Run tiny = MainTest.run("init-model", "--arch", "llama", "--layers", "1", "--hidden", "16", "--heads", "2",
                "--vocab", "100", "--context", "32", "--out", noTokenizer.toString());
        assertEquals(0, tiny.exitCode(), tiny.err());
        assertTrue(!Files.exists(noTokenizer.resolve("tokenizer.json")), "no tokenizer that could not decode its ids");
    }

    @Test
    void presetsAndWrongOptionsAreCheckedBeforeAnythingIsWritten() {
        Path out = temp.resolve("never");
        assertEquals(2, MainTest.run("init-model", "--preset", "llama-9b", "--out", out.toString()).exitCode());
        Run mixed = MainTest.run("init-model", "--preset", "qwen2.5-0.5b", "--layers", "2", "--out", out.toString());
        assertEquals(2, mixed.exitCode());
        assertTrue(mixed.err().contains("drop --layers"), mixed.err());
        assertEquals(2, MainTest.run("init-model", "--arch", "llama", "--layers", "1", "--hidden", "16", "--heads", "2",
                "--vocab", "300", "--context", "8", "--dtype", "int8", "--out", out.toString()).exitCode());
        assertEquals(2, MainTest.run("init-model", "--arch", "gemma", "--layers", "1", "--hidden", "16", "--heads", "2",
                "--vocab", "300", "--context", "8", "--sliding-window", "4", "--out", out.toString()).exitCode());
        assertEquals(2, MainTest.run("init-model", "--layers", "1", "--out", out.toString()).exitCode());
        assertTrue(!Files.exists(out));
    }
}
