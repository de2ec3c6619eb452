package dev.loraflow.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.cli.MainTest.Run;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelPresets;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * Every flag of every command typed as a user types it, through the picocli entry point, and its effect
 * checked against what {@code --help} says. The flags typed are recorded; after the tests every option
 * the commands declare (negated forms included) must have been typed here, so a new flag needs a test.
 */
class EveryFlagTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern LEARNING_RATE = Pattern.compile("step \\d+/\\d+ .* lr (\\S+) ");
    /** Flags typed, by command. */
    private static final Map<String, Set<String>> TYPED = new ConcurrentHashMap<>();

    @TempDir
    static Path temp;
    static Path base;
    static Path data;
    /** An adapter trained hard on "7 7 7 …", so that its effect on generation is unmistakable. */
    static Path sevens;

    static Run cli(String... args) {
        String command = args.length > 0 && !args[0].startsWith("-") ? args[0] : "";
        for (String arg : args) {
            if (arg.matches("-{1,2}[A-Za-z].*")) {
                TYPED.computeIfAbsent(command, c -> ConcurrentHashMap.newKeySet()).add(arg.split("=", 2)[0]);
            }
        }
        return MainTest.run(args);
    }

    static Run ok(String... args) {
        Run run = cli(args);
        assertEquals(0, run.exitCode(), String.join(" ", args) + "\n" + run.err());
        return run;
    }

    @BeforeAll
    static void tinyModelAndData() throws IOException {
        base = temp.resolve("base");
        // 257: the byte-level tokenizer's size, so that any id the model draws can be decoded.
        ok("init-model", "--arch", "gpt2", "--layers", "1", "--hidden", "16", "--heads", "2", "--vocab", "257",
                "--context", "32", "--seed", "1", "--out", base.toString());
        data = temp.resolve("data.jsonl");
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            StringBuilder ids = new StringBuilder();
            for (int t = 0; t < 12; t++) {
                ids.append(t == 0 ? "" : ", ").append(10 + (i * 7 + t * 3) % 200);
            }
            lines.add("{\"input_ids\": [" + ids + "]}");
        }
        Files.write(data, lines);
        Path sevensData = temp.resolve("sevens.jsonl");
        Files.writeString(sevensData, "{\"input_ids\": [7, 7, 7, 7, 7, 7, 7, 7, 7, 7]}\n".repeat(4));
        sevens = temp.resolve("sevens");
        ok("train", "--base", base.toString(), "--data", sevensData.toString(), "--out", sevens.toString(), "--steps", "30",
                "--lr", "5e-2", "--schedule", "constant", "--targets", "all-linear", "--dropout", "0", "--batch-size", "2",
                "--seq-len", "10");
    }

    @AfterAll
    static void everyDeclaredFlagWasTyped() {
        CommandLine main = new CommandLine(new Main());
        Map<String, Set<String>> missing = new TreeMap<>();
        collectUntyped("", main.getCommandSpec(), missing);
        main.getSubcommands().forEach((name, sub) -> collectUntyped(name, sub.getCommandSpec(), missing));
        assertTrue(missing.isEmpty(), "flags without a test here: " + missing);
    }

    private static void collectUntyped(String command, CommandLine.Model.CommandSpec spec, Map<String, Set<String>> missing) {
        Set<String> declared = new TreeSet<>(spec.negatedOptionsMap().keySet());
        spec.options().forEach(option -> declared.addAll(List.of(option.names())));
        declared.removeAll(TYPED.getOrDefault(command, Set.of()));
        if (!declared.isEmpty()) {
            missing.put(command.isEmpty() ? "loraflow" : command, declared);
        }
    }

    @Test
    void helpAndVersionOnEveryCommand() {
        Run version = ok("--version");
        assertTrue(version.out().startsWith("loraflow 0."), version.out());
        assertEquals(version.out(), ok("-V").out());
        assertTrue(ok("--help").out().startsWith("Usage: loraflow"));
        assertEquals(ok("--help").out(), ok("-h").out());
        for (String command : new CommandLine(new Main()).getSubcommands().keySet()) {
            Run help = ok(command, "--help");
            assertTrue(help.out().startsWith("Usage: loraflow " + command), help.out());
            assertEquals(help.out(), ok(command, "-h").out());
            assertEquals(version.out(), ok(command, "--version").out(), command);
            assertEquals(version.out(), ok(command, "-V").out(), command);
        }
    }

    @Test
    void initModelWritesTheShapeItIsGiven() throws IOException {
        Path gpt2 = temp.resolve("init-gpt2");
        ok("init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "24", "--heads", "3", "--intermediate", "40",
                "--vocab", "260", "--context", "20", "--seed", "5", "--out", gpt2.toString());
        Gpt2Config config = (Gpt2Config) ModelConfig.read(gpt2.resolve("config.json"));
        assertEquals(new Gpt2Config(260, 20, 24, 2, 3, 40, Gpt2Config.DEFAULT_LAYER_NORM_EPSILON), config);

        Path llama = temp.resolve("init-llama");
        ok("init-model", "--arch", "llama", "--layers", "1", "--hidden", "32", "--heads", "4", "--kv-heads", "2",
                "--vocab", "100", "--context", "16", "--out", llama.toString());
        DecoderConfig llamaConfig = (DecoderConfig) ModelConfig.read(llama.resolve("config.json"));
        assertEquals(4, llamaConfig.numHeads());
        assertEquals(2, llamaConfig.numKeyValueHeads());
        assertEquals(100, llamaConfig.vocabSize());

        // --seed: the same seed writes the same weights, another seed other weights.
        Path same = temp.resolve("init-same");
        Path other = temp.resolve("init-other");
        ok("init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "24", "--heads", "3", "--intermediate", "40",
                "--vocab", "260", "--context", "20", "--seed", "5", "--out", same.toString());
        ok("init-model", "--arch", "gpt2", "--layers", "2", "--hidden", "24", "--heads", "3", "--intermediate", "40",
                "--vocab", "260", "--context", "20", "--seed", "6", "--out", other.toString());
        byte[] weights = Files.readAllBytes(gpt2.resolve("model.safetensors"));
        assertArrayEquals(weights, Files.readAllBytes(same.resolve("model.safetensors")));
        assertFalse(java.util.Arrays.equals(weights, Files.readAllBytes(other.resolve("model.safetensors"))));
    }

    @Test
    void initModelStoresTheDtypeItIsGiven() throws IOException {
        for (String dtype : List.of("bf16", "f16", "f32")) {
            Path out = temp.resolve("init-" + dtype);
            Run run = ok("init-model", "--arch", "llama", "--layers", "1", "--hidden", "16", "--heads", "2", "--vocab", "40",
                    "--context", "8", "--dtype", dtype, "--out", out.toString());
            DType expected = DType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
            assertEquals(expected.name(), run.json().get("dtype").asText());
            try (SafetensorsFile weights = SafetensorsFile.open(out.resolve("model.safetensors"))) {
                for (String name : weights.tensorNames()) {
                    assertEquals(expected, weights.info(name).dtype(), name);
                }
            }
        }
    }

    @Test
    void initModelWritesTheHeadDimAndSlidingWindowItIsGiven() throws IOException {
        // A head dimension other than hidden / heads (32 / 4 = 8), and a window shorter than the context.
        Path out = temp.resolve("init-mistral");
        ok("init-model", "--arch", "mistral", "--layers", "1", "--hidden", "32", "--heads", "4", "--head-dim", "12",
                "--vocab", "40", "--context", "16", "--sliding-window", "6", "--out", out.toString());
        JsonNode written = JSON.readTree(out.resolve("config.json").toFile());
        assertEquals(12, written.get("head_dim").asInt(), written.toString());
        assertEquals(6, written.get("sliding_window").asInt(), written.toString());
        DecoderConfig read = (DecoderConfig) ModelConfig.read(out.resolve("config.json"));
        assertEquals(12, read.headDim());
        try (SafetensorsFile weights = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            assertArrayEquals(new long[] {4 * 12, 32}, weights.info("model.layers.0.self_attn.q_proj.weight").shape());
        }
        // --sliding-window 0 writes none.
        Path noWindow = temp.resolve("init-mistral-no-window");
        ok("init-model", "--arch", "mistral", "--layers", "1", "--hidden", "32", "--heads", "4", "--vocab", "40",
                "--context", "16", "--sliding-window", "0", "--out", noWindow.toString());
        assertTrue(JSON.readTree(noWindow.resolve("config.json").toFile()).get("sliding_window").isNull());
    }

    /**
     * Every preset is a released model's full size: the smallest, gpt2 (124M parameters, 240 MB in f16, a few
     * seconds), is written and deleted; the others' values are checked against the released config.json files
     * in core's DecoderFamiliesTest. What --preset refuses is refused before anything is written.
     */
    @Test
    void initModelPresetGivesTheWholeShape() throws IOException {
        Path gpt2 = temp.resolve("init-preset-gpt2");
        ok("init-model", "--preset", "gpt2", "--dtype", "f16", "--out", gpt2.toString());
        try {
            assertEquals(ModelPresets.get("gpt2"), ModelConfig.read(gpt2.resolve("config.json")));
            try (SafetensorsFile weights = SafetensorsFile.open(gpt2.resolve("model.safetensors"))) {
                TensorInfo embedding = weights.info(weights.tensorNames().stream()
                        .filter(name -> name.endsWith("wte.weight")).findFirst().orElseThrow());
                assertArrayEquals(new long[] {50257, 768}, embedding.shape());
                assertEquals(DType.F16, embedding.dtype());
            }
        } finally {
            try (var files = Files.walk(gpt2)) {
                for (Path file : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.delete(file);
                }
            }
        }

        Path out = temp.resolve("init-preset");
        Run unknown = cli("init-model", "--preset", "llama-9b", "--out", out.toString());
        assertEquals(2, unknown.exitCode());
        assertTrue(unknown.err().contains("no preset \"llama-9b\"") && unknown.err().contains("qwen2.5-0.5b"),
                unknown.err());
        Run withShape = cli("init-model", "--preset", "gpt2", "--head-dim", "8", "--sliding-window", "4", "--dtype", "bf16",
                "--out", out.toString());
        assertEquals(2, withShape.exitCode());
        assertTrue(withShape.err().contains("--preset gives the whole shape; drop --head-dim, --sliding-window"),
                withShape.err());
        assertFalse(Files.exists(out), "nothing is written");
    }

    @Test
    void trainQuantizeHoldsTheBaseQuantizedAndRecordsIt() throws IOException {
        List<String> common = List.of("train", "--base", base.toString(), "--data", data.toString(), "--steps", "2",
                "--dropout", "0", "--lr", "0.01", "--seed", "3");
        byte[] plain = Files.readAllBytes(train(common, "quant-none").resolve("adapter_model.safetensors"));
        assertFalse(JSON.readTree(temp.resolve("quant-none").resolve("adapter_config.json").toFile())
                .has("loraflow_base_quantization"), "a plain adapter's config stays PEFT's");
        for (String quantization : List.of("nf4", "int8")) {
            Path out = temp.resolve("quant-" + quantization);
            Run run = ok("train", "--base", base.toString(), "--data", data.toString(), "--steps", "2", "--dropout", "0",
                    "--lr", "0.01", "--seed", "3", "--quantize", quantization, "--out", out.toString());
            assertEquals(quantization, run.json().get("quantization").asText());
            assertEquals(quantization, JSON.readTree(out.resolve("adapter_config.json").toFile())
                    .get("loraflow_base_quantization").asText());
            // The same seed and data on the quantized base's weights give other gradients, so another adapter.
            assertFalse(java.util.Arrays.equals(plain, Files.readAllBytes(out.resolve("adapter_model.safetensors"))),
                    quantization);
        }
    }

    /** Checkpointing recomputes each block's forward with the same dropout: the adapter is the same bytes either way. */
    @Test
    void trainGradientCheckpointingGivesTheSameAdapter() throws IOException {
        List<String> common = List.of("train", "--base", base.toString(), "--data", data.toString(), "--steps", "2",
                "--dropout", "0.1", "--lr", "0.01", "--seed", "3");
        Run on = ok("train", "--base", base.toString(), "--data", data.toString(), "--steps", "2", "--dropout", "0.1",
                "--lr", "0.01", "--seed", "3", "--gradient-checkpointing", "--out", temp.resolve("ckpt-on").toString());
        assertTrue(on.json().get("gradient_checkpointing").asBoolean(), on.out());
        assertTrue(on.err().contains("gradient checkpointing"), on.err());
        Run off = ok("train", "--base", base.toString(), "--data", data.toString(), "--steps", "2", "--dropout", "0.1",
                "--lr", "0.01", "--seed", "3", "--no-gradient-checkpointing", "--out", temp.resolve("ckpt-off").toString());
        assertFalse(off.json().get("gradient_checkpointing").asBoolean(), off.out());
        // A tiny model fits without it, so the default leaves it off.
        Path auto = train(common, "ckpt-auto");
        byte[] expected = Files.readAllBytes(auto.resolve("adapter_model.safetensors"));
        assertArrayEquals(expected, Files.readAllBytes(temp.resolve("ckpt-on").resolve("adapter_model.safetensors")));
        assertArrayEquals(expected, Files.readAllBytes(temp.resolve("ckpt-off").resolve("adapter_model.safetensors")));
    }

    @Test
    void trainWritesTheLoraConfigItIsGiven() throws IOException {
        Path out = temp.resolve("lora-config");
        ok("train", "--base", base.toString(), "--data", data.toString(), "--out", out.toString(), "--steps", "1",
                "--rank", "4", "--alpha", "8", "--dropout", "0.1", "--targets", "c_attn,c_fc", "--use-rslora");
        JsonNode config = JSON.readTree(out.resolve("adapter_config.json").toFile());
        assertEquals(4, config.get("r").asInt());
        assertEquals(8.0, config.get("lora_alpha").asDouble());
        assertEquals(0.1, config.get("lora_dropout").asDouble());
        assertEquals(Set.of("c_attn", "c_fc"), Set.copyOf(JSON.convertValue(config.get("target_modules"), List.class)));
        assertTrue(config.get("use_rslora").asBoolean());
        try (SafetensorsFile weights = SafetensorsFile.open(out.resolve("adapter_model.safetensors"))) {
            assertArrayEquals(new long[] {4, 16},
                    weights.info("base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight").shape());
        }
    }

    @Test
    void learningRateScheduleAndWarmupShowInTheProgressLines() {
        List<Double> constant = learningRates(ok("train", "--base", base.toString(), "--data", data.toString(), "--out",
                temp.resolve("lr-constant").toString(), "--steps", "4", "--lr", "0.01", "--schedule", "constant"));
        assertEquals(List.of(0.01, 0.01, 0.01, 0.01), constant);
        List<Double> cosine = learningRates(ok("train", "--base", base.toString(), "--data", data.toString(), "--out",
                temp.resolve("lr-cosine").toString(), "--steps", "4", "--lr", "0.01", "--schedule", "cosine"));
        assertEquals(0.01, cosine.getFirst());
        for (int i = 1; i < cosine.size(); i++) {
            assertTrue(cosine.get(i) < cosine.get(i - 1), "cosine decays: " + cosine);
        }
        List<Double> warm = learningRates(ok("train", "--base", base.toString(), "--data", data.toString(), "--out",
                temp.resolve("lr-warmup").toString(), "--steps", "4", "--lr", "0.01", "--schedule", "constant",
                "--warmup-steps", "2"));
        assertTrue(warm.get(0) < warm.get(1) && warm.get(1) < 0.01, "a linear rise: " + warm);
        assertEquals(List.of(0.01, 0.01), warm.subList(2, 4));
    }

    private static List<Double> learningRates(Run run) {
        List<Double> rates = new ArrayList<>();
        Matcher matcher = LEARNING_RATE.matcher(run.err());
        while (matcher.find()) {
            rates.add(Double.parseDouble(matcher.group(1)));
        }
        return rates;
    }

    @Test
    void weightDecayAndClippingChangeTheUpdates() throws IOException {
        List<String> common = List.of("train", "--base", base.toString(), "--data", data.toString(), "--steps", "3",
                "--lr", "0.01", "--dropout", "0");
        float plain = maxAbs(train(common, "wd-none", "--max-grad-norm", "0"), "lora_B");
        assertTrue(plain > 0);
        // Adam is scale-invariant until the gradient falls under its epsilon: clipped to 1e-9, the steps shrink.
        float clipped = maxAbs(train(common, "clip", "--max-grad-norm", "1e-9"), "lora_B");
        assertTrue(clipped < plain / 10, clipped + " vs " + plain);
        // Decoupled weight decay pulls A (not zero at the start) towards zero.
        float decayed = maxAbs(train(common, "wd", "--max-grad-norm", "0", "--weight-decay", "20"), "lora_A");
        assertTrue(decayed < maxAbs(temp.resolve("wd-none"), "lora_A"), "decay shrinks A");
    }

    private static Path train(List<String> common, String name, String... more) {
        Path out = temp.resolve(name);
        List<String> args = new ArrayList<>(common);
        args.addAll(List.of("--out", out.toString()));
        args.addAll(List.of(more));
        ok(args.toArray(String[]::new));
        return out;
    }

    private static float maxAbs(Path adapter, String factor) throws IOException {
        float max = 0;
        try (SafetensorsFile weights = SafetensorsFile.open(adapter.resolve("adapter_model.safetensors"))) {
            for (String name : weights.tensorNames()) {
                if (name.contains(factor)) {
                    for (float value : weights.readFloat32(name)) {
                        max = Math.max(max, Math.abs(value));
                    }
                }
            }
        }
        return max;
    }

    @Test
    void batchShapeFlagsSetTheTokensTrainedOn() throws IOException {
        // Every line has 12 ids: a sequence of --seq-len S counts S - 1 next-token targets.
        JsonNode summary = ok("train", "--base", base.toString(), "--data", data.toString(), "--out",
                temp.resolve("shape").toString(), "--steps", "2", "--batch-size", "3", "--seq-len", "8", "--grad-accum", "2")
                .json();
        assertEquals(2, summary.get("steps").asInt());
        assertEquals(2 * 2 * 3 * 7, summary.get("tokens").asLong(), summary.toString());
    }

    @Test
    void saveEveryUntilStepAndResume() throws IOException {
        Path out = temp.resolve("resumable");
        Run first = ok("train", "--base", base.toString(), "--data", data.toString(), "--out", out.toString(),
                "--steps", "6", "--save-every", "2", "--until-step", "5");
        assertEquals(5, first.json().get("steps").asInt());
        assertTrue(first.err().contains("checkpoint at step 2 in ") && first.err().contains("checkpoint at step 4 in "),
                first.err());
        assertFalse(first.err().contains("checkpoint at step 6"), first.err());
        assertEquals(5, JSON.readTree(out.resolve("trainer_state.json").toFile()).get("step").asInt());
        Run rest = ok("train", "--base", base.toString(), "--data", data.toString(), "--out", out.toString(),
                "--steps", "6", "--resume");
        assertEquals(6, rest.json().get("steps").asInt());
    }

    @Test
    void seedDecidesTheInitialisation() throws IOException {
        List<String> common = List.of("train", "--base", base.toString(), "--data", data.toString(), "--steps", "1");
        byte[] one = Files.readAllBytes(train(common, "seed-1a", "--seed", "1").resolve("adapter_model.safetensors"));
        assertArrayEquals(one, Files.readAllBytes(train(common, "seed-1b", "--seed", "1")
                .resolve("adapter_model.safetensors")));
        assertFalse(java.util.Arrays.equals(one, Files.readAllBytes(train(common, "seed-2", "--seed", "2")
                .resolve("adapter_model.safetensors"))));
    }

    /**
     * --no-shuffle trains on the file's order: the first step (batch 1) of the whole file equals a step on
     * its first line alone, and the next steps follow the lines in turn; shuffling (the default, or
     * --shuffle) starts elsewhere.
     */
    @Test
    void noShuffleKeepsTheFileOrder() throws IOException {
        List<String> lines = Files.readAllLines(data);
        List<String> common = List.of("train", "--base", base.toString(), "--batch-size", "1", "--seq-len", "12",
                "--dropout", "0", "--lr", "0.01", "--schedule", "constant");
        byte[] inOrder = adapterAfter(common, data, 3, "--no-shuffle");
        Path firstThree = temp.resolve("first-three.jsonl");
        Files.write(firstThree, lines.subList(0, 3));
        assertArrayEquals(inOrder, adapterAfter(common, firstThree, 3, "--no-shuffle"));
        Path reordered = temp.resolve("reordered.jsonl");
        Files.write(reordered, List.of(lines.get(1), lines.get(0), lines.get(2)));
        assertFalse(java.util.Arrays.equals(inOrder, adapterAfter(common, reordered, 3, "--no-shuffle")),
                "the order matters, so the equality above is the order's");
        Path firstLine = temp.resolve("first-line.jsonl");
        Files.write(firstLine, lines.subList(0, 1));
        byte[] firstStep = adapterAfter(common, firstLine, 1, "--no-shuffle");
        assertArrayEquals(firstStep, adapterAfter(common, data, 1, "--no-shuffle"));

        byte[] shuffled = adapterAfter(common, data, 3);
        assertArrayEquals(shuffled, adapterAfter(common, data, 3, "--shuffle"), "--shuffle is the default");
        assertFalse(java.util.Arrays.equals(inOrder, shuffled), "the default shuffles");
    }

    private static byte[] adapterAfter(List<String> common, Path file, int steps, String... more) throws IOException {
        Path out = temp.resolve("order-" + System.nanoTime());
        List<String> args = new ArrayList<>(common);
        args.addAll(List.of("--data", file.toString(), "--out", out.toString(), "--steps", Integer.toString(steps)));
        args.addAll(List.of(more));
        ok(args.toArray(String[]::new));
        return Files.readAllBytes(out.resolve("adapter_model.safetensors"));
    }

    @Test
    void evalWithAndWithoutAdapterAndAnyBatchSize() throws IOException {
        JsonNode plain = ok("eval", "--model", base.toString(), "--data", data.toString()).json();
        JsonNode oneByOne = ok("eval", "--model", base.toString(), "--data", data.toString(), "--batch-size", "1").json();
        assertEquals(plain.get("tokens"), oneByOne.get("tokens"));
        assertEquals(plain.get("loss").asDouble(), oneByOne.get("loss").asDouble(), 1e-5);
        assertEquals(2, cli("eval", "--model", base.toString(), "--data", data.toString(), "--batch-size", "0").exitCode());
        Path sevensData = temp.resolve("sevens-eval.jsonl");
        Files.writeString(sevensData, "{\"input_ids\": [7, 7, 7, 7, 7, 7]}\n");
        double before = ok("eval", "--model", base.toString(), "--data", sevensData.toString()).json().get("loss").asDouble();
        double after = ok("eval", "--model", base.toString(), "--adapter", sevens.toString(), "--data",
                sevensData.toString()).json().get("loss").asDouble();
        // A tiny random GPT-2 ties its output to embeddings of norm ~0.1, so LoRA moves its logits only a little.
        assertTrue(after < before - 0.01, "the adapter learned the sevens: " + before + " -> " + after);
    }

    @Test
    void generateFlags() throws IOException {
        JsonNode greedy = ok("generate", "--model", base.toString(), "--prompt-ids", "7,7", "--max-new-tokens", "6").json();
        assertEquals(List.of(7, 7), ints(greedy.get("prompt_ids")));
        assertTrue(greedy.get("ids").size() <= 6);
        if (greedy.get("finish_reason").asText().equals("length")) {
            assertEquals(6, greedy.get("ids").size());
        }
        assertNotEquals(List.of(7, 7, 7, 7, 7, 7), ints(greedy.get("ids")), "the base does not repeat 7 by itself");
        JsonNode adapted = ok("generate", "--model", base.toString(), "--adapter", sevens.toString(), "--prompt-ids", "7,7",
                "--max-new-tokens", "6").json();
        assertEquals(List.of(7, 7, 7, 7, 7, 7), ints(adapted.get("ids")));

        JsonNode text = ok("generate", "--model", base.toString(), "--prompt", "ab", "--max-new-tokens", "2").json();
        assertEquals(List.of(97, 98), ints(text.get("prompt_ids")), "the byte-level tokenizer: a token per byte");

        List<Integer> seeded = sample("--seed", "1");
        assertEquals(seeded, sample("--seed", "1"));
        assertNotEquals(seeded, sample("--seed", "2"), "another seed, other draws (a random model is near uniform)");
        List<Integer> greedyIds = ints(ok("generate", "--model", base.toString(), "--prompt-ids", "1,2,3",
                "--max-new-tokens", "8").json().get("ids"));
        assertNotEquals(greedyIds, seeded, "temperature 1 samples");
        assertEquals(greedyIds, sample("--seed", "1", "--top-k", "1"), "top-k 1 keeps the most likely token only");
        assertEquals(greedyIds, sample("--seed", "1", "--top-p", "1e-6"), "a tiny nucleus holds the most likely token");
    }

    private static List<Integer> sample(String... more) throws IOException {
        List<String> args = new ArrayList<>(List.of("generate", "--model", base.toString(), "--prompt-ids", "1,2,3",
                "--max-new-tokens", "8", "--temperature", "1.0"));
        args.addAll(List.of(more));
        return ints(ok(args.toArray(String[]::new)).json().get("ids"));
    }

    private static List<Integer> ints(JsonNode array) {
        List<Integer> values = new ArrayList<>();
        array.forEach(value -> values.add(value.asInt()));
        return values;
    }

    @Test
    void mergeDtypeAndBaseDigest() throws IOException {
        Path merged = temp.resolve("merged");
        JsonNode result = ok("merge", "--base", base.toString(), "--adapter", sevens.toString(), "--out", merged.toString())
                .json();
        assertDtypes(merged, DType.F32);
        Path half = temp.resolve("merged-f16");
        ok("merge", "--base", base.toString(), "--adapter", sevens.toString(), "--out", half.toString(), "--dtype", "f16",
                "--base-sha256", result.get("base_sha256").asText());
        assertDtypes(half, DType.F16);
        Run wrong = cli("merge", "--base", base.toString(), "--adapter", sevens.toString(), "--out",
                temp.resolve("merged-wrong").toString(), "--base-sha256", "0".repeat(64));
        assertEquals(1, wrong.exitCode());
        // The merged model alone generates what the base with the adapter generates.
        assertEquals(List.of(7, 7, 7, 7), ints(ok("generate", "--model", merged.toString(), "--prompt-ids", "7,7",
                "--max-new-tokens", "4").json().get("ids")));
    }

    private static void assertDtypes(Path model, DType expected) throws IOException {
        try (SafetensorsFile file = SafetensorsFile.open(model.resolve("model.safetensors"))) {
            for (TensorInfo tensor : file.tensors()) {
                assertEquals(expected, tensor.dtype(), tensor.name());
            }
        }
    }

    @Test
    void exportOnnxFlags() throws IOException {
        Path plain = temp.resolve("export-plain/model.onnx");
        JsonNode line = ok("export-onnx", "--model", base.toString(), "--out", plain.toString()).json();
        assertFalse(line.has("verified"), "no --verify, no verification");
        assertEquals(17, opsetOf(plain), "the default opset");
        Path merged = temp.resolve("export-merged/model.onnx");
        JsonNode mergedLine = ok("export-onnx", "--model", base.toString(), "--adapter", sevens.toString(), "--opset", "18",
                "--out", merged.toString(), "--verify").json();
        assertTrue(mergedLine.get("verified").asBoolean() && mergedLine.get("merged").asBoolean(), mergedLine.toString());
        assertEquals(18, opsetOf(merged));
        assertEquals(List.of(7, 7, 7, 7), ints(ok("generate", "--model", merged.toString(), "--prompt-ids", "7,7",
                "--max-new-tokens", "4").json().get("ids")), "the adapter is in the graph");
        Path unmerged = temp.resolve("export-unmerged/model.onnx");
        JsonNode unmergedLine = ok("export-onnx", "--model", base.toString(), "--adapter", sevens.toString(), "--unmerged",
                "--out", unmerged.toString()).json();
        assertEquals(3 * 4, unmergedLine.get("lora_inputs").asInt(), "A, B, scaling of c_attn, attn.c_proj, c_fc, mlp.c_proj");
        assertTrue(Files.size(unmerged) > 0);
    }

    @Test
    void exportOnnxQuantizeFlags() throws IOException {
        Path sevensData = temp.resolve("sevens-heldout.jsonl");
        Files.writeString(sevensData, "{\"input_ids\": [7, 7, 7, 7, 7, 7, 7, 7]}\n".repeat(2));
        Path int8 = temp.resolve("export-int8/model.onnx");
        JsonNode int8Line = ok("export-onnx", "--model", base.toString(), "--adapter", sevens.toString(), "--quantize", "int8",
                "--quantize-embeddings", "int8", "--verify", "--verify-data", data.toString(), "--out", int8.toString()).json();
        assertEquals("int8 per channel, embeddings int8", int8Line.get("quantization").asText());
        assertTrue(int8Line.get("verified").asBoolean() && int8Line.get("loss_increase").asDouble() <= 0.01, int8Line.toString());
        assertTrue(int8Line.get("max_abs_logit_error").asDouble() > 0 && int8Line.get("loss_tokens").asInt() == 12 * 11,
                int8Line.toString());
        assertEquals(List.of(7, 7, 7, 7), ints(ok("generate", "--model", int8.toString(), "--prompt-ids", "7,7",
                "--max-new-tokens", "4").json().get("ids")), "the int8 graph keeps the adapter's behaviour");

        Path int4 = temp.resolve("export-int4/model.onnx");
        JsonNode int4Line = ok("export-onnx", "--model", base.toString(), "--adapter", sevens.toString(), "--unmerged",
                "--quantize", "int4", "--int4-block-size", "16", "--int4-zero-points", "--int4-accuracy-level", "0",
                "--verify", "--verify-data", sevensData.toString(), "--max-loss-increase", "0.5", "--out", int4.toString()).json();
        assertEquals("int4 block 16 with zero points accuracy_level 0, embeddings f32", int4Line.get("quantization").asText());
        assertTrue(int4Line.get("verified").asBoolean() && int4Line.get("lora_inputs").asInt() == 12, int4Line.toString());

        // A bound of 0: the hard-trained adapter's F32 loss on its own data is a sharp minimum that int4 rounding leaves.
        Run strict = cli("export-onnx", "--model", base.toString(), "--adapter", sevens.toString(), "--quantize", "int4",
                "--verify", "--verify-data", sevensData.toString(), "--max-loss-increase", "0",
                "--out", temp.resolve("export-int4-strict/model.onnx").toString());
        JsonNode strictLine = JSON.readTree(strict.out());
        assertEquals(strictLine.get("loss_increase").asDouble() > 0 ? 1 : 0, strict.exitCode(), strict.out() + strict.err());
        if (strict.exitCode() == 1) {
            assertTrue(strict.err().contains("held-out loss") && strict.err().contains("bound +0.0 %"), strict.err());
        }

        Path out = temp.resolve("export-bad/model.onnx");
        for (String[] bad : List.of(
                new String[] {"--quantize", "int5"},
                new String[] {"--quantize", "int4", "--int4-block-size", "24"},
                new String[] {"--quantize", "int8", "--int4-zero-points"},
                new String[] {"--quantize", "int8", "--int4-accuracy-level", "0"},
                new String[] {"--quantize", "int4", "--int4-accuracy-level", "5"},
                new String[] {"--quantize", "int8", "--quantize-embeddings", "int4"},
                new String[] {"--quantize-embeddings", "int8"},
                new String[] {"--verify", "--verify-data", data.toString()},
                new String[] {"--quantize", "int8", "--verify-data", data.toString()},
                new String[] {"--quantize", "int8", "--max-loss-increase", "-0.1"})) {
            List<String> args = new ArrayList<>(List.of("export-onnx", "--model", base.toString(), "--out", out.toString()));
            args.addAll(List.of(bad));
            Run run = cli(args.toArray(String[]::new));
            assertEquals(2, run.exitCode(), String.join(" ", bad) + ": " + run.err());
        }
        assertFalse(Files.exists(out), "nothing written for a refused command line");
    }

    /** The default domain's version among a ModelProto's opset_import entries (field 8: domain 1, version 2). */
    private static long opsetOf(Path onnx) throws IOException {
        ByteBuffer model = ByteBuffer.wrap(Files.readAllBytes(onnx));
        while (model.hasRemaining()) {
            long tag = varint(model);
            if ((tag & 7) == 0) {
                varint(model);
                continue;
            }
            int length = (int) varint(model);
            ByteBuffer field = model.slice(model.position(), length);
            model.position(model.position() + length);
            if (tag >>> 3 == 8) {
                String domain = "";
                long version = -1;
                while (field.hasRemaining()) {
                    long inner = varint(field);
                    if (inner >>> 3 == 1) {
                        byte[] text = new byte[(int) varint(field)];
                        field.get(text);
                        domain = new String(text, StandardCharsets.UTF_8);
                    } else {
                        version = varint(field);
                    }
                }
                if (domain.isEmpty()) {
                    return version;
                }
            }
        }
        throw new IOException(onnx + ": no opset_import for the default domain");
    }

    private static long varint(ByteBuffer buffer) {
        long value = 0;
        for (int shift = 0; ; shift += 7) {
            byte b = buffer.get();
            value |= (long) (b & 0x7f) << shift;
            if (b >= 0) {
                return value;
            }
        }
    }

    /**
     * Out of memory ends like any failure: one line on stderr and exit code 1, no stack trace. A child JVM
     * with a 32 MiB heap is asked to evaluate a data set of 3 million tokens, which eval reads whole (a model or
     * a batch too large is refused before by the memory check: {@code HeapLimitTest}).
     */
    @Test
    void outOfMemoryIsOneLineAndExitCodeOne() throws Exception {
        Path model = temp.resolve("small");
        RandomModel.write(new Gpt2Config(64, 64, 32, 1, 2, 64, 1e-5), 1, model);
        Path data = Files.writeString(temp.resolve("too-big.jsonl"), IntStream.range(0, 3_000_000)
                .mapToObj(id -> Integer.toString(id % 64)).collect(Collectors.joining(",", "{\"input_ids\": [", "]}\n")));
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "-Xmx32m", "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "eval", "--model", model.toString(),
                "--data", data.toString()));
        Process process = new ProcessBuilder(command).start();
        process.getOutputStream().close();
        byte[] out = process.getInputStream().readAllBytes();
        String err = new String(process.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(120, TimeUnit.SECONDS));
        assertEquals(1, process.exitValue(), err);
        assertEquals(0, out.length);
        // The JVM itself announces the incubator module on every start; everything else is loraflow's line.
        List<String> lines = err.lines().filter(l -> !l.startsWith("WARNING: Using incubator modules")).toList();
        assertEquals(1, lines.size(), err);
        assertTrue(lines.getFirst().startsWith("loraflow eval: out of memory"), err);
        assertTrue(lines.getFirst().contains("LORAFLOW_JAVA_OPTS=-Xmx"), err);
    }
}
