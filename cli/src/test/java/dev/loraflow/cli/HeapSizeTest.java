package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.data.JsonlExamples;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.train.Evaluation;
import dev.loraflow.core.train.MemoryEstimate;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.WeightQuantization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher's pre-pass ({@link HeapSize}): the -Xmx it gives {@code train} is the step's memory estimate and the
 * data, a quarter more, and a JVM started with exactly that heap trains without being refused by its own check;
 * export-onnx, generate and eval get what their own checks require, and run in it; merge, which streams, is left to
 * the default heap.
 */
class HeapSizeTest {

    private static final long MIB = 1L << 20;

    @TempDir
    Path temp;

    @Test
    void theHeapLimitIsAQuarterAnd128MibAboveTheNeedAtLeast512MibAndNeverAboveTheCeiling() {
        assertEquals(1378 * MIB, MemoryEstimate.heapLimit(1000 * MIB, 8192 * MIB));
        assertEquals(512 * MIB, MemoryEstimate.heapLimit(100 * MIB, 8192 * MIB));
        assertEquals(1024 * MIB, MemoryEstimate.heapLimit(1000 * MIB, 1024 * MIB));
    }

    @Test
    void trainGetsItsEstimateAndTrainsInExactlyThatHeap() throws Exception {
        // activations dominate: 8 layers of 4 × 512 tokens, about 820 MB by the estimate
        ModelConfig config = DecoderConfig.llama(1000, 256, 768, 8, 4, 4, 64, 512, 1e-5, 10000, false);
        Path base = bf16Base(config);
        Path data = IdLines.write(temp.resolve("data.jsonl"), 8, i -> 512, 1000);
        List<String> train = List.of("train", "--base", base.toString(), "--data", data.toString(), "--steps", "1",
                "--batch-size", "4", "--seq-len", "512", "--rank", "8", "--targets", "q_proj,v_proj",
                "--out", temp.resolve("adapter").toString());
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(8).loraDropout(0.05).targetModules("q_proj", "v_proj").build();
        long dataBytes = Files.size(data);
        long plain = MemoryEstimate.forTraining(base, config, lora, Quantization.NONE, 4, 512, false, false).heapBytes();
        long checkpointed = MemoryEstimate.forTraining(base, config, lora, Quantization.NONE, 4, 512, true, false).heapBytes();
        assertTrue(plain > 600 * MIB && checkpointed < plain, plain + " / " + checkpointed);
        long ceiling = Runtime.getRuntime().maxMemory();

        // default flags: the step fits this JVM's heap without checkpointing, so the estimate is the plain one
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(plain + dataBytes, ceiling))), heapOption(train));
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(checkpointed + dataBytes, ceiling))),
                heapOption(train, "--gradient-checkpointing"));

        String heap = heapOption(train).orElseThrow();
        HeapLimitTest.Result trained = HeapLimitTest.run(List.of(heap.split(" ")), train);
        assertEquals(0, trained.exitCode(), trained.output());
        assertTrue(Files.exists(temp.resolve("adapter").resolve("adapter_model.safetensors")), trained.output());
        assertTrue(!trained.output().contains("gradient checkpointing"), "the sized heap holds the plain step: " + trained.output());
    }

    @Test
    void exportGetsWhatItsCheckRequiresAndRunsInExactlyThatHeapWhileMergeIsLeftUnsized() throws Exception {
        // an untied head beside the embedding, which an export writes in chunks
        Path base = bf16Base(DecoderConfig.llama(16000, 512, 1408, 2, 8, 4, 64, 256, 1e-5, 10000, false));
        Path data = temp.resolve("data.jsonl");
        Files.writeString(data, "{\"input_ids\":[1,2,3,4,5,6,7,8]}\n{\"input_ids\":[8,7,6,5,4,3,2,1]}\n");
        Path adapter = temp.resolve("adapter");
        MainTest.Run train = MainTest.run("train", "--base", base.toString(), "--data", data.toString(), "--steps", "1",
                "--batch-size", "2", "--seq-len", "8", "--rank", "4", "--targets", "q_proj,v_proj", "--out", adapter.toString());
        assertEquals(0, train.exitCode(), train.err());
        long ceiling = Runtime.getRuntime().maxMemory();

        List<String> merge = List.of("merge", "--base", base.toString(), "--adapter", adapter.toString(),
                "--out", temp.resolve("merged").toString());
        assertEquals(Optional.empty(), heapOption(merge));
        MainTest.Run merged = MainTest.run(merge.toArray(String[]::new));
        assertEquals(0, merged.exitCode(), merged.err());

        List<String> export = List.of("export-onnx", "--model", temp.resolve("merged").toString(), "--quantize", "int4",
                "--out", temp.resolve("onnx").resolve("model.onnx").toString());
        long exportHeap = OnnxExporter.requirements(temp.resolve("merged"), WeightQuantization.of(WeightQuantization.Precision.INT4))
                .heapBytes();
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(exportHeap, ceiling))), heapOption(export));
        HeapLimitTest.Result exported = HeapLimitTest.run(List.of(heapOption(export).orElseThrow().split(" ")), export);
        assertEquals(0, exported.exitCode(), exported.output());
        assertTrue(Files.size(temp.resolve("onnx").resolve("model.onnx")) > 0, exported.output());

        // an export with the adapter counts it; --verify runs the Java forward too
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(OnnxExporter.requirements(base, adapter,
                WeightQuantization.none()).heapBytes(), ceiling))), heapOption(List.of("export-onnx", "--model",
                base.toString(), "--adapter", adapter.toString(), "--out", "x.onnx")));
        assertEquals(Optional.empty(), heapOption(export, "--verify"));
    }

    @Test
    void generateGetsTheHeapOfItsPromptsCacheAndGeneratesInExactlyThatHeap() throws Exception {
        // a long context and a large vocabulary, as Llama 3's: a cache of the whole context, or of thousands of tokens
        // with their logits, would need gigabytes; a prompt of 3 tokens and 5 new ones needs a cache of 7
        DecoderConfig config = DecoderConfig.llama(32000, 256, 768, 2, 4, 4, 64, 131072, 1e-5, 10000, false);
        Path base = bf16Base(config);
        long ceiling = Runtime.getRuntime().maxMemory();
        List<String> generate = List.of("generate", "--model", base.toString(), "--max-new-tokens", "5");
        long needed = MemoryEstimate.forGeneration(base, config, null, Quantization.NONE, 7).heapBytes();
        assertTrue(needed < 128 * MIB, "needs " + needed);
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(needed, ceiling))), heapOption(generate, "--prompt-ids", "1,2,3"));
        // text is sized before it is tokenized: two tokens per UTF-8 byte and 16 more, "héllo" 6 bytes
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(MemoryEstimate.forGeneration(base, config, null,
                Quantization.NONE, 28 + 5 - 1).heapBytes(), ceiling))), heapOption(generate, "--prompt", "héllo"));

        // the command checks again with the prompt's own tokens; its output is the JSON line alone (the tokenizer's
        // logging library says nothing)
        String heap = heapOption(generate, "--prompt", "héllo").orElseThrow();
        HeapLimitTest.Result generated = HeapLimitTest.run(List.of(heap.split(" ")), generate, "--prompt", "héllo");
        assertEquals(0, generated.exitCode(), generated.output());
        List<String> lines = generated.output().lines()
                .filter(line -> !line.startsWith("WARNING: Using incubator modules")).toList();
        assertEquals(1, lines.size(), generated.output());
        assertTrue(lines.getFirst().matches("\\{\"prompt_ids\":\\[\\d+(,\\d+)*],\"ids\":\\[\\d+(,\\d+){4}],.*"),
                generated.output());
    }

    @Test
    void evalGetsTheHeapOfItsBatchesForwardAndItsExamplesAndEvaluatesInExactlyThatHeap() throws Exception {
        DecoderConfig config = DecoderConfig.llama(8000, 256, 768, 4, 4, 4, 64, 512, 1e-5, 10000, false);
        Path base = bf16Base(config);
        Path data = IdLines.write(temp.resolve("data.jsonl"), 10, i -> 150 + 5 * i, 8000);
        List<Example> examples = JsonlExamples.read(data, null, config.vocabSize());
        long needed = Evaluation.memoryEstimate(base, config, null, examples, 4).heapBytes() + Example.heapBytes(examples);
        // the forward's batches of 4 × 195 tokens, not a training step's
        assertTrue(needed < MemoryEstimate.forTraining(base, config, null, Quantization.NONE, 4, 195, true, false).heapBytes(),
                "needs " + needed);
        List<String> eval = List.of("eval", "--model", base.toString(), "--data", data.toString(), "--batch-size", "4");
        assertEquals(Optional.of(xmx(MemoryEstimate.heapLimit(needed, Runtime.getRuntime().maxMemory()))), heapOption(eval));

        HeapLimitTest.Result evaluated = HeapLimitTest.run(List.of(heapOption(eval).orElseThrow().split(" ")), eval);
        assertEquals(0, evaluated.exitCode(), evaluated.output());
        assertTrue(evaluated.output().contains("\"tokens\":" + (10 * 150 + 5 * 45 - 10)), evaluated.output());
    }

    @Test
    void commandsThatLoadNoModelOrWillRefuseTheirArgumentsAreLeftToTheDefaultHeap() throws Exception {
        assertEquals(Optional.empty(), HeapSize.heapOption(new String[] {"init-model", "--preset", "gpt2", "--out", "x"}));
        assertEquals(Optional.empty(), HeapSize.heapOption(new String[] {"train", "--help"}));
        assertEquals(Optional.empty(), HeapSize.heapOption(new String[] {"train", "--base", temp.resolve("none").toString(),
                "--data", "d.jsonl", "--out", "a"}));
        assertEquals(Optional.empty(), HeapSize.heapOption(new String[] {"train", "--no-such-flag"}));
        assertEquals(Optional.empty(), HeapSize.heapOption(new String[] {"eval", "--model", temp.resolve("none").toString(),
                "--data", "d.jsonl"}));
        assertEquals(Optional.empty(), HeapSize.heapOption(new String[] {}));
    }

    private Path bf16Base(ModelConfig config) throws IOException {
        Path base = temp.resolve("base");
        RandomModel.write(config, 1, DType.BF16, base);
        return base;
    }

    private static String xmx(long bytes) {
        return "-Xmx" + (bytes >> 20) + "m -XX:MaxDirectMemorySize=" + (Runtime.getRuntime().maxMemory() >> 20) + "m";
    }

    private static Optional<String> heapOption(List<String> args, String... more) {
        List<String> all = new ArrayList<>(args);
        all.addAll(List.of(more));
        return HeapSize.heapOption(all.toArray(String[]::new));
    }
}
