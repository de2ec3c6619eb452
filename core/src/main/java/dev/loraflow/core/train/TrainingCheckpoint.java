package dev.loraflow.core.train;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A training run's complete state in one directory, beside the PEFT adapter it trains:
 * {@code adapter_config.json} + {@code adapter_model.safetensors} (F32, loadable by PEFT as is),
 * {@code optimizer.safetensors} (AdamW's moments, {@code <parameter>.exp_avg} and {@code .exp_avg_sq})
 * and {@code trainer_state.json} (step, data position, the settings that must not change on resume,
 * the digest of the base model trained on, and the SHA-256 of the other files).
 *
 * <p>Each file is replaced atomically and the state file goes last, naming the digests of the
 * files it belongs with: a crash between two files leaves a checkpoint that {@link #read} refuses
 * rather than one that resumes from mixed steps.
 */
public record TrainingCheckpoint(PeftAdapter adapter, Moments moments, Progress progress) {

    public static final String STATE_FILE = "trainer_state.json";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    static final String FORMAT = "loraflow.training-state";
    static final int VERSION = 1;
    /** The state file's key for the base model's digest; absent where the run did not know it. */
    static final String BASE_SHA256 = "base_sha256";
    private static final long MAX_STATE_BYTES = 1 << 20;
    private static final ObjectMapper JSON = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build());

    /**
     * Where a run stands, and what it was run with that a resumed run must repeat.
     *
     * @param dataId     names the training data and its order, see {@link Trainer}
     * @param baseSha256 the base model's {@link dev.loraflow.core.model.ModelDigest ModelDigest} (a merge of the
     *                   adapter checks the base against it), or null where the run did not know it
     */
    public record Progress(long step, long dataPosition, String dataId, long seed, int batchSize, int seqLen,
                           int gradAccum, String baseSha256) {

        static Progress of(long step, long dataPosition, String dataId, TrainingSettings settings, String baseSha256) {
            return new Progress(step, dataPosition, dataId, settings.seed(), settings.batchSize(), settings.seqLen(),
                    settings.gradAccum(), baseSha256);
        }

        /** A run may resume from this progress only with the same data order, batches and dropout keys. */
        void requireCompatible(TrainingSettings current, String currentData, Path directory) throws TrainingStateException {
            List<String> differences = new ArrayList<>();
            compare(differences, "seed", seed, current.seed());
            compare(differences, "batch size", batchSize, current.batchSize());
            compare(differences, "seq len", seqLen, current.seqLen());
            compare(differences, "gradient accumulation", gradAccum, current.gradAccum());
            if (!dataId.equals(currentData)) {
                differences.add("the training data differs (" + dataId + " vs " + currentData + ")");
            }
            if (step > current.steps()) {
                differences.add("the checkpoint is at step " + step + ", beyond the " + current.steps() + " steps asked for");
            }
            if (!differences.isEmpty()) {
                throw new TrainingStateException(directory + ": cannot resume: " + String.join("; ", differences));
            }
        }

        private static void compare(List<String> differences, String what, long saved, long current) {
            if (saved != current) {
                differences.add(what + " was " + saved + ", now " + current);
            }
        }
    }

    /** AdamW's state by parameter name: a model's parameter order need not be the adapter file's. */
    public record Moments(long step, Map<String, float[]> first, Map<String, float[]> second) {

        /** The state in the order of {@code parameters}, for {@link AdamW#restore}. */
        public AdamW.State inOrderOf(List<Parameter> parameters) {
            List<float[]> firstInOrder = new ArrayList<>();
            List<float[]> secondInOrder = new ArrayList<>();
            for (Parameter parameter : parameters) {
                float[] m = first.get(parameter.name());
                float[] v = second.get(parameter.name());
                if (m == null || v == null) {
                    throw new IllegalArgumentException("the checkpoint has no optimizer state for " + parameter.name());
                }
                firstInOrder.add(m);
                secondInOrder.add(v);
            }
            if (parameters.size() != first.size()) {
                throw new IllegalArgumentException("the checkpoint has optimizer state for " + first.size()
                        + " parameters, the model " + parameters.size());
            }
            return new AdamW.State(step, firstInOrder, secondInOrder);
        }
    }

    /** @param parameters the optimiser's parameters, in the order of its state */
    public static void write(Path directory, PeftAdapter adapter, List<Parameter> parameters, AdamW.State optimizer,
                             Progress progress) throws IOException {
        Files.createDirectories(directory);
        adapter.write(directory, DType.F32);
        List<String> names = parameters.stream().map(Parameter::name).toList();
        if (names.size() != optimizer.firstMoments().size()) {
            throw new IllegalArgumentException("optimizer state holds " + optimizer.firstMoments().size()
                    + " parameters, " + names.size() + " named");
        }
        SafetensorsWriter moments = new SafetensorsWriter().putMetadata("step", Long.toString(optimizer.step()));
        for (int i = 0; i < names.size(); i++) {
            float[] first = optimizer.firstMoments().get(i);
            moments.add(names.get(i) + ".exp_avg", first, DType.F32, first.length);
            moments.add(names.get(i) + ".exp_avg_sq", optimizer.secondMoments().get(i), DType.F32, first.length);
        }
        moments.write(directory.resolve(OPTIMIZER_FILE));

        ObjectNode state = JSON.createObjectNode();
        state.put("format", FORMAT);
        state.put("version", VERSION);
        state.put("step", progress.step());
        state.put("data_position", progress.dataPosition());
        state.put("data_id", progress.dataId());
        state.put("seed", progress.seed());
        state.put("batch_size", progress.batchSize());
        state.put("seq_len", progress.seqLen());
        state.put("grad_accum", progress.gradAccum());
        if (progress.baseSha256() != null) {
            state.put(BASE_SHA256, progress.baseSha256());
        }
        ObjectNode files = state.putObject("sha256");
        for (String file : List.of(PeftAdapter.CONFIG_FILE, PeftAdapter.WEIGHTS_FILE, OPTIMIZER_FILE)) {
            files.put(file, Sha256.of(directory.resolve(file)));
        }
        AtomicFiles.write(directory.resolve(STATE_FILE),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsString(state).getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Reads and checks a checkpoint.
     *
     * @throws TrainingStateException if a file is missing, malformed or does not match its digest
     */
    public static TrainingCheckpoint read(Path directory) throws IOException {
        Path stateFile = directory.resolve(STATE_FILE);
        if (!Files.isRegularFile(stateFile)) {
            throw new TrainingStateException(directory + ": no " + STATE_FILE + " (not a training checkpoint)");
        }
        JsonNode state = readState(stateFile);
        JsonNode digests = state.path("sha256");
        for (String file : List.of(PeftAdapter.CONFIG_FILE, PeftAdapter.WEIGHTS_FILE, OPTIMIZER_FILE)) {
            Path path = directory.resolve(file);
            if (!Files.isRegularFile(path)) {
                throw new TrainingStateException(directory + ": " + file + " is missing");
            }
            String expected = digests.path(file).asText("");
            String actual = Sha256.of(path);
            if (!actual.equals(expected)) {
                throw new TrainingStateException(path + ": SHA-256 " + actual + " does not match " + STATE_FILE
                        + "'s " + expected + " (a partial or foreign write)");
            }
        }
        PeftAdapter adapter = PeftAdapter.read(directory);
        Moments optimizer = readMoments(directory.resolve(OPTIMIZER_FILE), parameterNames(adapter));
        String data = state.path("data_id").asText("");
        if (data.isEmpty()) {
            throw new TrainingStateException(stateFile + ": data_id is missing");
        }
        long step = bounded(state, "step", stateFile, 0, Long.MAX_VALUE);
        Progress progress = new Progress(step, bounded(state, "data_position", stateFile, 0, Long.MAX_VALUE), data,
                bounded(state, "seed", stateFile, Long.MIN_VALUE, Long.MAX_VALUE),
                (int) bounded(state, "batch_size", stateFile, 1, Integer.MAX_VALUE),
                (int) bounded(state, "seq_len", stateFile, 2, Integer.MAX_VALUE),
                (int) bounded(state, "grad_accum", stateFile, 1, Integer.MAX_VALUE), baseSha256(state, stateFile));
        if (optimizer.step() != step) {
            throw new TrainingStateException(directory + ": optimizer is at step " + optimizer.step() + ", the state at "
                    + step);
        }
        return new TrainingCheckpoint(adapter, optimizer, progress);
    }

    /**
     * The digest of the base model the checkpoint in {@code directory} was trained on, from its state file alone
     * (the adapter and moments are neither read nor checked): what a merge of the adapter expects the base to be.
     * Empty when the directory holds no training checkpoint (a plain PEFT adapter) or one that did not record it.
     *
     * @throws TrainingStateException if the state file is malformed
     */
    public static Optional<String> recordedBaseSha256(Path directory) throws IOException {
        Path stateFile = directory.resolve(STATE_FILE);
        if (!Files.isRegularFile(stateFile)) {
            return Optional.empty();
        }
        return Optional.ofNullable(baseSha256(readState(stateFile), stateFile));
    }

    /** The state file's JSON, once it is known to be this format's. */
    private static JsonNode readState(Path stateFile) throws IOException {
        if (Files.size(stateFile) > MAX_STATE_BYTES) {
            throw new TrainingStateException(stateFile + ": larger than " + MAX_STATE_BYTES + " bytes");
        }
        JsonNode state;
        try {
            state = JSON.readTree(Files.readString(stateFile, StandardCharsets.UTF_8));
        } catch (JacksonException | java.nio.charset.MalformedInputException e) {
            throw new TrainingStateException(stateFile + ": not valid JSON: " + e.getMessage(), e);
        }
        if (state == null || !state.isObject() || !FORMAT.equals(state.path("format").asText(null))) {
            throw new TrainingStateException(stateFile + ": not a " + FORMAT + " file");
        }
        if (state.path("version").asInt(-1) != VERSION) {
            throw new TrainingStateException(stateFile + ": version " + state.path("version") + ", this build reads "
                    + VERSION);
        }
        return state;
    }

    /** The recorded base digest, null when there is none (a checkpoint from before it was recorded). */
    private static String baseSha256(JsonNode state, Path stateFile) throws TrainingStateException {
        JsonNode value = state.get(BASE_SHA256);
        if (value == null) {
            return null;
        }
        if (!value.isTextual() || !value.asText().matches("[0-9a-f]{64}")) {
            throw new TrainingStateException(stateFile + ": \"" + BASE_SHA256 + "\" must be 64 lower-case hex digits");
        }
        return value.asText();
    }

    /** The parameters an adapter's modules hold: A and B of each. */
    private static List<String> parameterNames(PeftAdapter adapter) {
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, LoraWeights> module : adapter.modules().entrySet()) {
            names.add(module.getKey() + ".lora_A.weight");
            names.add(module.getKey() + ".lora_B.weight");
        }
        return names;
    }

    private static Moments readMoments(Path file, List<String> names) throws IOException {
        try (SafetensorsFile moments = SafetensorsFile.open(file)) {
            long step;
            try {
                step = Long.parseLong(moments.metadata().getOrDefault("step", ""));
            } catch (NumberFormatException e) {
                throw new TrainingStateException(file + ": metadata \"step\" is missing or not a number");
            }
            if (moments.tensors().size() != 2 * names.size()) {
                throw new TrainingStateException(file + ": holds " + moments.tensors().size() + " tensors, expected "
                        + 2 * names.size() + " (two per adapter parameter)");
            }
            Map<String, float[]> first = new LinkedHashMap<>();
            Map<String, float[]> second = new LinkedHashMap<>();
            for (String name : names) {
                for (String suffix : List.of(".exp_avg", ".exp_avg_sq")) {
                    if (!moments.contains(name + suffix)) {
                        throw new TrainingStateException(file + ": no tensor " + name + suffix);
                    }
                }
                first.put(name, moments.readFloat32(name + ".exp_avg"));
                second.put(name, moments.readFloat32(name + ".exp_avg_sq"));
            }
            return new Moments(step, first, second);
        }
    }

    private static long bounded(JsonNode state, String key, Path file, long minimum, long maximum)
            throws TrainingStateException {
        JsonNode value = state.get(key);
        if (value == null || !value.isIntegralNumber() || !value.canConvertToLong()) {
            throw new TrainingStateException(file + ": \"" + key + "\" must be an integer");
        }
        long number = value.asLong();
        if (number < minimum || number > maximum) {
            throw new TrainingStateException(file + ": \"" + key + "\" is " + number + ", outside [" + minimum + ", "
                    + maximum + "]");
        }
        return number;
    }
}
