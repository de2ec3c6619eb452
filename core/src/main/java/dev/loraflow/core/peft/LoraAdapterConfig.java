package dev.loraflow.core.peft;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.PythonJson;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * A PEFT {@code LoraConfig} as stored in {@code adapter_config.json}.
 *
 * <p>{@code peft_type} is always {@code "LORA"} and {@code use_dora} always false, so neither is a
 * component: reading anything else fails. Keys this record does not model (PEFT adds some in most
 * releases) are kept in {@link #otherKeys} and written back unchanged, except that keys switching on
 * a feature loraflow does not implement (a bias on lora_B, layer replication, ...) are rejected
 * rather than silently ignored.
 *
 * @param taskType PEFT task type; {@code "CAUSAL_LM"} when the key is absent, null when it is null
 * @param r default rank
 * @param loraAlpha default alpha
 * @param loraDropout dropout probability on the LoRA input
 * @param targetModules which modules carry LoRA
 * @param bias which biases are trained alongside
 * @param fanInFanOut whether the base weight is stored [in, out] (GPT-2's Conv1D)
 * @param useRslora scaling α/√r instead of α/r
 * @param baseModelNameOrPath base model id or path, may be null
 * @param rankPattern per-module ranks; keys are regexes matched as {@code (.*\.)?(KEY)$}, first match wins
 * @param alphaPattern per-module alphas, matched like {@code rankPattern}
 * @param layersToTransform layer indices to adapt; empty means all layers
 * @param layersPattern names of the layer list(s) that {@code layersToTransform} indexes; may be empty
 * @param modulesToSave modules trained in full and saved with the adapter; may be empty
 * @param initLoraWeights initialisation PEFT used
 * @param inferenceMode whether the adapter was saved for inference
 * @param revision base model revision, may be null
 * @param peftVersion version of PEFT that wrote the file, may be null
 * @param otherKeys keys this record does not model, written back unchanged
 */
public record LoraAdapterConfig(
        String taskType,
        int r,
        double loraAlpha,
        double loraDropout,
        TargetModules targetModules,
        Bias bias,
        boolean fanInFanOut,
        boolean useRslora,
        String baseModelNameOrPath,
        Map<String, Integer> rankPattern,
        Map<String, Double> alphaPattern,
        List<Integer> layersToTransform,
        List<String> layersPattern,
        List<String> modulesToSave,
        InitLoraWeights initLoraWeights,
        boolean inferenceMode,
        String revision,
        String peftVersion,
        Map<String, JsonNode> otherKeys) {

    /** File name PEFT gives the config. */
    public static final String FILE_NAME = "adapter_config.json";

    public static final String DEFAULT_TASK_TYPE = "CAUSAL_LM";

    /** Which modules carry LoRA: PEFT's {@code target_modules} is a list, a regex string or "all-linear". */
    public sealed interface TargetModules {

        /** Module names; PEFT matches a module whose path equals a name or ends with "." + name. */
        record Names(List<String> names) implements TargetModules {
            public Names {
                names = List.copyOf(names);
            }
        }

        /** A Python regex that must match a module's full path ({@code re.fullmatch}). */
        record Regex(String pattern) implements TargetModules {
            public Regex {
                Objects.requireNonNull(pattern, "pattern");
                if (pattern.equals(ALL_LINEAR)) {
                    throw new IllegalArgumentException("\"all-linear\" is TargetModules.AllLinear, not a regex");
                }
            }
        }

        /** Every linear layer except the output head ("all-linear"). */
        record AllLinear() implements TargetModules {}

        /** Not given ({@code null}): PEFT picks the architecture's default, e.g. c_attn for GPT-2. */
        record ArchitectureDefault() implements TargetModules {}

        String ALL_LINEAR = "all-linear";
    }

    /** PEFT's {@code bias} option. */
    public enum Bias {
        NONE("none"),
        ALL("all"),
        LORA_ONLY("lora_only");

        private final String json;

        Bias(String json) {
            this.json = json;
        }

        public String json() {
            return json;
        }

        static Bias fromJson(String text) {
            for (Bias bias : values()) {
                if (bias.json.equals(text)) {
                    return bias;
                }
            }
            throw new IllegalArgumentException("bias must be \"none\", \"all\" or \"lora_only\", found \"" + text + "\"");
        }
    }

    /** PEFT's {@code init_lora_weights}: a boolean, or the name of an initialisation method. */
    public sealed interface InitLoraWeights {

        /** {@code true}: Kaiming-uniform A and zero B; {@code false}: random B too (tests only). */
        record Default(boolean enabled) implements InitLoraWeights {}

        /** A named method such as "gaussian", "pissa" or "olora". */
        record Method(String name) implements InitLoraWeights {
            public Method {
                Objects.requireNonNull(name, "name");
            }
        }
    }

    private static final Set<String> MODELLED_KEYS = Set.of(
            "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
            "fan_in_fan_out", "use_rslora", "base_model_name_or_path", "rank_pattern", "alpha_pattern",
            "layers_to_transform", "layers_pattern", "modules_to_save", "init_lora_weights", "use_dora",
            "inference_mode", "revision", "peft_version");

    // Keys of newer PEFT releases that change what the adapter computes. Honouring the rest of the
    // file while ignoring one of these would give wrong outputs without any warning.
    private static final Map<String, String> UNSUPPORTED_WHEN_SET = Map.of(
            "lora_bias", "a trainable bias on lora_B",
            "layer_replication", "replicated base layers",
            "target_parameters", "LoRA on raw parameters such as MoE experts",
            "trainable_token_indices", "trainable token embeddings",
            "use_qalora", "QALoRA input pooling",
            "alora_invocation_tokens", "activated LoRA (aLoRA)");

    private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(64).build())
            .build());

    public LoraAdapterConfig {
        if (r <= 0) {
            throw new IllegalArgumentException("r must be positive, got " + r);
        }
        if (!Double.isFinite(loraAlpha)) {
            throw new IllegalArgumentException("lora_alpha must be finite, got " + loraAlpha);
        }
        if (!(loraDropout >= 0 && loraDropout <= 1)) {
            throw new IllegalArgumentException("lora_dropout must be in [0, 1], got " + loraDropout);
        }
        Objects.requireNonNull(targetModules, "targetModules");
        Objects.requireNonNull(bias, "bias");
        Objects.requireNonNull(initLoraWeights, "initLoraWeights");
        rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(rankPattern == null ? Map.of() : rankPattern));
        alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(alphaPattern == null ? Map.of() : alphaPattern));
        layersToTransform = layersToTransform == null ? List.of() : List.copyOf(layersToTransform);
        layersPattern = layersPattern == null ? List.of() : List.copyOf(layersPattern);
        modulesToSave = modulesToSave == null ? List.of() : List.copyOf(modulesToSave);

        rankPattern.forEach((key, rank) -> {
            compilePatternKey("rank_pattern", key);
            if (rank == null || rank <= 0) {
                throw new IllegalArgumentException("rank_pattern['" + key + "'] must be a positive integer, got " + rank);
            }
        });
        alphaPattern.forEach((key, alpha) -> {
            compilePatternKey("alpha_pattern", key);
            if (alpha == null || !Double.isFinite(alpha)) {
                throw new IllegalArgumentException("alpha_pattern['" + key + "'] must be a finite number, got " + alpha);
            }
        });
        if (targetModules instanceof TargetModules.Regex(String pattern)) {
            try {
                Pattern.compile(pattern);
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("target_modules regex does not compile: " + e.getDescription(), e);
            }
        }
        for (int layer : layersToTransform) {
            if (layer < 0) {
                throw new IllegalArgumentException("layers_to_transform holds a negative index " + layer);
            }
        }
        // The same two checks as PEFT's LoraConfig.__post_init__.
        if (!layersToTransform.isEmpty() && targetModules instanceof TargetModules.Regex) {
            throw new IllegalArgumentException("layers_to_transform cannot be used when target_modules is a regex string");
        }
        if (!layersPattern.isEmpty() && layersToTransform.isEmpty()) {
            throw new IllegalArgumentException("layers_pattern requires layers_to_transform");
        }

        Map<String, JsonNode> copies = new LinkedHashMap<>();
        (otherKeys == null ? Map.<String, JsonNode>of() : otherKeys).forEach((key, value) -> {
            if (MODELLED_KEYS.contains(key)) {
                throw new IllegalArgumentException("'" + key + "' is a component, not an other key");
            }
            copies.put(key, value.deepCopy());
        });
        otherKeys = Collections.unmodifiableMap(copies);
    }

    /** Defaults as PEFT's LoraConfig, with a causal-LM task and the architecture's default targets. */
    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Copies of the keys this record does not model. */
    @Override
    public Map<String, JsonNode> otherKeys() {
        Map<String, JsonNode> copies = new LinkedHashMap<>();
        otherKeys.forEach((key, value) -> copies.put(key, value.deepCopy()));
        return Collections.unmodifiableMap(copies);
    }

    /** The rank of the module at {@code modulePath} (e.g. {@code model.layers.0.self_attn.q_proj}). */
    public int rankFor(String modulePath) {
        String key = patternKeyFor(rankPattern.keySet(), modulePath);
        return key == null ? r : rankPattern.get(key);
    }

    /** The alpha of the module at {@code modulePath}. */
    public double alphaFor(String modulePath) {
        String key = patternKeyFor(alphaPattern.keySet(), modulePath);
        return key == null ? loraAlpha : alphaPattern.get(key);
    }

    /** The factor PEFT multiplies B·A by for this module: α/r, or α/√r with rsLoRA. */
    public double scaling(String modulePath) {
        int rank = rankFor(modulePath);
        double alpha = alphaFor(modulePath);
        return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
    }

    /** PEFT's get_pattern_key: the first key, in file order, whose regex matches the path's tail. */
    private static String patternKeyFor(Set<String> keys, String modulePath) {
        for (String key : keys) {
            if (compilePatternKey("pattern", key).matcher(modulePath).matches()) {
                return key;
            }
        }
        return null;
    }

    // re.match(rf"(.*\.)?({key})$", path) anchors at the start and, with $, at the end: a full match.
    private static Pattern compilePatternKey(String what, String key) {
        try {
            return Pattern.compile("(.*\\.)?(" + key + ")");
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException(what + " key '" + key + "' is not a valid regex: " + e.getDescription(), e);
        }
    }

    /** Reads {@code file} ({@code adapter_config.json}). */
    public static LoraAdapterConfig read(Path file) throws IOException {
        String json;
        try {
            json = Files.readString(file, StandardCharsets.UTF_8);
        } catch (CharacterCodingException e) {
            throw new PeftFormatException(file + ": not valid UTF-8", e);
        }
        return parse(file.toString(), json);
    }

    /**
     * Parses config JSON; {@code source} names it in error messages.
     *
     * @throws PeftFormatException if the JSON is malformed, not a LoRA config, or asks for a feature
     *     loraflow does not implement
     */
    public static LoraAdapterConfig parse(String source, String json) throws PeftFormatException {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JacksonException e) {
            throw new PeftFormatException(source + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new PeftFormatException(source + ": must hold a JSON object");
        }
        try {
            return fromTree(source, root);
        } catch (IllegalArgumentException e) {
            throw new PeftFormatException(source + ": " + e.getMessage(), e);
        }
    }

    private static LoraAdapterConfig fromTree(String source, JsonNode root) throws PeftFormatException {
        String peftType = Fields.string(root, "peft_type");
        if (!"LORA".equals(peftType)) {
            throw new PeftFormatException(source + ": peft_type is " + (peftType == null ? "missing" : "\"" + peftType + "\"")
                    + "; only \"LORA\" adapters are supported");
        }
        if (Fields.bool(root, "use_dora", false)) {
            throw new PeftFormatException(source + ": use_dora is true; DoRA adapters are not supported");
        }
        for (Map.Entry<String, String> unsupported : UNSUPPORTED_WHEN_SET.entrySet()) {
            JsonNode value = root.get(unsupported.getKey());
            if (Fields.isSet(value)) {
                throw new PeftFormatException(source + ": " + unsupported.getKey() + " = " + value
                        + " asks for " + unsupported.getValue() + ", which is not supported");
            }
        }
        Builder builder = builder()
                .taskType(root.has("task_type") ? Fields.string(root, "task_type") : DEFAULT_TASK_TYPE)
                .r(Fields.integer(root, "r", 8))
                .loraAlpha(Fields.number(root, "lora_alpha", 8))
                .loraDropout(Fields.number(root, "lora_dropout", 0.0))
                .targetModules(Fields.targetModules(root))
                .bias(Bias.fromJson(Objects.requireNonNullElse(Fields.string(root, "bias"), "none")))
                .fanInFanOut(Fields.bool(root, "fan_in_fan_out", false))
                .useRslora(Fields.bool(root, "use_rslora", false))
                .baseModelNameOrPath(Fields.string(root, "base_model_name_or_path"))
                .rankPattern(Fields.integerMap(root, "rank_pattern"))
                .alphaPattern(Fields.numberMap(root, "alpha_pattern"))
                .layersToTransform(Fields.integerOrList(root, "layers_to_transform"))
                .layersPattern(Fields.stringOrList(root, "layers_pattern"))
                .modulesToSave(Fields.stringOrList(root, "modules_to_save"))
                .initLoraWeights(Fields.initLoraWeights(root))
                .inferenceMode(Fields.bool(root, "inference_mode", false))
                .revision(Fields.string(root, "revision"))
                .peftVersion(Fields.string(root, "peft_version"));
        Map<String, JsonNode> others = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : root.properties()) {
            if (!MODELLED_KEYS.contains(entry.getKey())) {
                others.put(entry.getKey(), entry.getValue());
            }
        }
        return builder.otherKeys(others).build();
    }

    /** The JSON text PEFT's save_pretrained would write: sorted keys, 2-space indent, no final newline. */
    public String toJson() {
        var factory = JsonNodeFactory.instance;
        ObjectNode root = factory.objectNode();
        otherKeys.forEach((key, value) -> root.set(key, value.deepCopy()));
        ObjectNode alphas = root.putObject("alpha_pattern");
        alphaPattern.forEach((key, alpha) -> alphas.set(key, pythonNumber(alpha)));
        root.put("base_model_name_or_path", baseModelNameOrPath);
        root.put("bias", bias.json());
        root.put("fan_in_fan_out", fanInFanOut);
        root.put("inference_mode", inferenceMode);
        switch (initLoraWeights) {
            case InitLoraWeights.Default(boolean enabled) -> root.put("init_lora_weights", enabled);
            case InitLoraWeights.Method(String name) -> root.put("init_lora_weights", name);
        }
        // Before PEFT 0.14 layers_pattern was a single string; one pattern is written that way so
        // older releases can still load the adapter.
        switch (layersPattern.size()) {
            case 0 -> root.putNull("layers_pattern");
            case 1 -> root.put("layers_pattern", layersPattern.getFirst());
            default -> layersPattern.forEach(root.putArray("layers_pattern")::add);
        }
        if (layersToTransform.isEmpty()) {
            root.putNull("layers_to_transform");
        } else {
            layersToTransform.forEach(root.putArray("layers_to_transform")::add);
        }
        root.set("lora_alpha", pythonNumber(loraAlpha));
        root.put("lora_dropout", loraDropout);
        if (modulesToSave.isEmpty()) {
            root.putNull("modules_to_save");
        } else {
            modulesToSave.forEach(root.putArray("modules_to_save")::add);
        }
        root.put("peft_type", "LORA");
        // Releases before 0.18 reject keys they do not know, so an absent version stays absent.
        if (peftVersion != null) {
            root.put("peft_version", peftVersion);
        }
        root.put("r", r);
        ObjectNode ranks = root.putObject("rank_pattern");
        rankPattern.forEach(ranks::put);
        root.put("revision", revision);
        switch (targetModules) {
            case TargetModules.Names(List<String> names) -> names.forEach(root.putArray("target_modules")::add);
            case TargetModules.Regex(String pattern) -> root.put("target_modules", pattern);
            case TargetModules.AllLinear() -> root.put("target_modules", TargetModules.ALL_LINEAR);
            case TargetModules.ArchitectureDefault() -> root.putNull("target_modules");
        }
        root.put("task_type", taskType);
        root.put("use_dora", false);
        root.put("use_rslora", useRslora);
        return PythonJson.dumps(root);
    }

    /** Atomically writes {@link #toJson()} to {@code file}. */
    public void write(Path file) throws IOException {
        AtomicFiles.write(file, toJson().getBytes(StandardCharsets.UTF_8));
    }

    /** Python keeps ints and floats apart; an integral alpha was almost certainly given as an int. */
    private static JsonNode pythonNumber(double value) {
        if (value == Math.rint(value) && Math.abs(value) < 0x1p53) {
            return JsonNodeFactory.instance.numberNode((long) value);
        }
        return JsonNodeFactory.instance.numberNode(value);
    }

    /** Typed access to config fields, with messages that name the key. */
    private static final class Fields {

        static boolean isSet(JsonNode value) {
            if (value == null || value.isNull() || value.isMissingNode()) {
                return false;
            }
            if (value.isBoolean()) {
                return value.booleanValue();
            }
            return !(value.isContainerNode() && value.isEmpty());
        }

        static String string(JsonNode root, String key) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return null;
            }
            if (!value.isTextual()) {
                throw new IllegalArgumentException(key + " must be a string, found " + value);
            }
            return value.textValue();
        }

        static boolean bool(JsonNode root, String key, boolean fallback) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return fallback;
            }
            if (!value.isBoolean()) {
                throw new IllegalArgumentException(key + " must be true or false, found " + value);
            }
            return value.booleanValue();
        }

        static int integer(JsonNode root, String key, int fallback) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return fallback;
            }
            return toInt(key, value);
        }

        static int toInt(String what, JsonNode value) {
            if (!value.isIntegralNumber() || !value.canConvertToInt()) {
                throw new IllegalArgumentException(what + " must be an integer, found " + value);
            }
            return value.intValue();
        }

        static double number(JsonNode root, String key, double fallback) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return fallback;
            }
            if (!value.isNumber()) {
                throw new IllegalArgumentException(key + " must be a number, found " + value);
            }
            return value.doubleValue();
        }

        static Map<String, Integer> integerMap(JsonNode root, String key) {
            Map<String, Integer> result = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> entry : object(root, key).entrySet()) {
                result.put(entry.getKey(), toInt(key + "['" + entry.getKey() + "']", entry.getValue()));
            }
            return result;
        }

        static Map<String, Double> numberMap(JsonNode root, String key) {
            Map<String, Double> result = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> entry : object(root, key).entrySet()) {
                if (!entry.getValue().isNumber()) {
                    throw new IllegalArgumentException(key + "['" + entry.getKey() + "'] must be a number, found "
                            + entry.getValue());
                }
                result.put(entry.getKey(), entry.getValue().doubleValue());
            }
            return result;
        }

        private static Map<String, JsonNode> object(JsonNode root, String key) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return Map.of();
            }
            if (!value.isObject()) {
                throw new IllegalArgumentException(key + " must be an object, found " + value);
            }
            Map<String, JsonNode> entries = new LinkedHashMap<>();
            value.properties().forEach(entry -> entries.put(entry.getKey(), entry.getValue()));
            return entries;
        }

        static List<Integer> integerOrList(JsonNode root, String key) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return List.of();
            }
            if (value.isNumber()) {
                return List.of(toInt(key, value));
            }
            if (!value.isArray()) {
                throw new IllegalArgumentException(key + " must be an integer or a list of integers, found " + value);
            }
            List<Integer> result = new ArrayList<>();
            for (JsonNode element : value) {
                result.add(toInt(key + " element", element));
            }
            return result;
        }

        static List<String> stringOrList(JsonNode root, String key) {
            JsonNode value = root.get(key);
            if (value == null || value.isNull()) {
                return List.of();
            }
            if (value.isTextual()) {
                return List.of(value.textValue());
            }
            return stringList(key, value);
        }

        static List<String> stringList(String key, JsonNode value) {
            if (!value.isArray()) {
                throw new IllegalArgumentException(key + " must be a string or a list of strings, found " + value);
            }
            List<String> result = new ArrayList<>();
            for (JsonNode element : value) {
                if (!element.isTextual()) {
                    throw new IllegalArgumentException(key + " must hold strings only, found " + element);
                }
                result.add(element.textValue());
            }
            return result;
        }

        static TargetModules targetModules(JsonNode root) {
            JsonNode value = root.get("target_modules");
            if (value == null || value.isNull()) {
                return new TargetModules.ArchitectureDefault();
            }
            if (value.isTextual()) {
                return value.textValue().equals(TargetModules.ALL_LINEAR)
                        ? new TargetModules.AllLinear()
                        : new TargetModules.Regex(value.textValue());
            }
            return new TargetModules.Names(stringList("target_modules", value));
        }

        static InitLoraWeights initLoraWeights(JsonNode root) {
            JsonNode value = root.get("init_lora_weights");
            if (value == null || value.isNull()) {
                return new InitLoraWeights.Default(true);
            }
            if (value.isBoolean()) {
                return new InitLoraWeights.Default(value.booleanValue());
            }
            if (value.isTextual()) {
                return new InitLoraWeights.Method(value.textValue());
            }
            throw new IllegalArgumentException("init_lora_weights must be a boolean or a method name, found " + value);
        }
    }

    /** Builds a config; every setter's default is PEFT's. */
    public static final class Builder {
        private String taskType = DEFAULT_TASK_TYPE;
        private int r = 8;
        private double loraAlpha = 8;
        private double loraDropout = 0.0;
        private TargetModules targetModules = new TargetModules.ArchitectureDefault();
        private Bias bias = Bias.NONE;
        private boolean fanInFanOut;
        private boolean useRslora;
        private String baseModelNameOrPath;
        private Map<String, Integer> rankPattern = Map.of();
        private Map<String, Double> alphaPattern = Map.of();
        private List<Integer> layersToTransform = List.of();
        private List<String> layersPattern = List.of();
        private List<String> modulesToSave = List.of();
        private InitLoraWeights initLoraWeights = new InitLoraWeights.Default(true);
        private boolean inferenceMode;
        private String revision;
        private String peftVersion;
        private Map<String, JsonNode> otherKeys = Map.of();

        private Builder() {}

        private Builder(LoraAdapterConfig config) {
            taskType = config.taskType;
            r = config.r;
            loraAlpha = config.loraAlpha;
            loraDropout = config.loraDropout;
            targetModules = config.targetModules;
            bias = config.bias;
            fanInFanOut = config.fanInFanOut;
            useRslora = config.useRslora;
            baseModelNameOrPath = config.baseModelNameOrPath;
            rankPattern = config.rankPattern;
            alphaPattern = config.alphaPattern;
            layersToTransform = config.layersToTransform;
            layersPattern = config.layersPattern;
            modulesToSave = config.modulesToSave;
            initLoraWeights = config.initLoraWeights;
            inferenceMode = config.inferenceMode;
            revision = config.revision;
            peftVersion = config.peftVersion;
            otherKeys = config.otherKeys;
        }

        public Builder taskType(String value) { taskType = value; return this; }
        public Builder r(int value) { r = value; return this; }
        public Builder loraAlpha(double value) { loraAlpha = value; return this; }
        public Builder loraDropout(double value) { loraDropout = value; return this; }
        public Builder targetModules(TargetModules value) { targetModules = value; return this; }
        /** Shorthand for a {@link TargetModules.Names} list. */
        public Builder targetModules(String... names) { targetModules = new TargetModules.Names(List.of(names)); return this; }
        public Builder bias(Bias value) { bias = value; return this; }
        public Builder fanInFanOut(boolean value) { fanInFanOut = value; return this; }
        public Builder useRslora(boolean value) { useRslora = value; return this; }
        public Builder baseModelNameOrPath(String value) { baseModelNameOrPath = value; return this; }
        public Builder rankPattern(Map<String, Integer> value) { rankPattern = value; return this; }
        public Builder alphaPattern(Map<String, Double> value) { alphaPattern = value; return this; }
        public Builder layersToTransform(List<Integer> value) { layersToTransform = value; return this; }
        public Builder layersPattern(List<String> value) { layersPattern = value; return this; }
        public Builder modulesToSave(List<String> value) { modulesToSave = value; return this; }
        public Builder initLoraWeights(InitLoraWeights value) { initLoraWeights = value; return this; }
        public Builder inferenceMode(boolean value) { inferenceMode = value; return this; }
        public Builder revision(String value) { revision = value; return this; }
        public Builder peftVersion(String value) { peftVersion = value; return this; }
        public Builder otherKeys(Map<String, JsonNode> value) { otherKeys = value; return this; }

        public LoraAdapterConfig build() {
            return new LoraAdapterConfig(taskType, r, loraAlpha, loraDropout, targetModules, bias, fanInFanOut,
                    useRslora, baseModelNameOrPath, rankPattern, alphaPattern, layersToTransform, layersPattern,
                    modulesToSave, initLoraWeights, inferenceMode, revision, peftVersion, otherKeys);
        }
    }
}
