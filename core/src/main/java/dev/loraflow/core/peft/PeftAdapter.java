package dev.loraflow.core.peft;

import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A LoRA adapter in Hugging Face PEFT's on-disk form: a directory with {@code adapter_config.json}
 * and {@code adapter_model.safetensors}, whose tensors are named
 * {@code base_model.model.<module path>.lora_A.weight} [r, in] and {@code ...lora_B.weight} [out, r].
 *
 * @param config the adapter's configuration
 * @param modules LoRA factors by module path (e.g. {@code transformer.h.0.attn.c_attn}), in file order
 */
public record PeftAdapter(LoraAdapterConfig config, Map<String, LoraWeights> modules) {

    public static final String CONFIG_FILE = LoraAdapterConfig.FILE_NAME;
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    /** Older PEFT releases' pickle format, which is refused. */
    public static final String PICKLE_WEIGHTS_FILE = "adapter_model.bin";

    /** PeftModel wraps the model as base_model (LoraModel) whose .model is the original. */
    public static final String KEY_PREFIX = "base_model.model.";
    private static final String A_SUFFIX = ".lora_A.weight";
    private static final String B_SUFFIX = ".lora_B.weight";
    private static final int MAX_LISTED_KEYS = 5;

    public PeftAdapter {
        Objects.requireNonNull(config, "config");
        Map<String, LoraWeights> copy = new LinkedHashMap<>();
        modules.forEach((path, weights) -> {
            if (!path.equals(weights.modulePath())) {
                throw new IllegalArgumentException("module '" + path + "' maps to weights of '" + weights.modulePath() + "'");
            }
            int expected = config.rankFor(path);
            if (weights.r() != expected) {
                throw new IllegalArgumentException("module '" + path + "' has rank " + weights.r()
                        + " but the config gives it r=" + expected);
            }
            copy.put(path, weights);
        });
        modules = Collections.unmodifiableMap(copy);
    }

    /** Safetensors key of a module's lora_A. */
    public static String loraAKey(String modulePath) {
        return KEY_PREFIX + modulePath + A_SUFFIX;
    }

    /** Safetensors key of a module's lora_B. */
    public static String loraBKey(String modulePath) {
        return KEY_PREFIX + modulePath + B_SUFFIX;
    }

    /**
     * Reads an adapter directory written by PEFT's {@code save_pretrained} (or {@link #write}).
     * Weights may be F32, F16 or BF16; they are returned as float32.
     *
     * @throws PeftFormatException if files are missing, keys or shapes are inconsistent, or the
     *     adapter uses a PEFT feature loraflow does not implement
     */
    public static PeftAdapter read(Path directory) throws IOException {
        if (!Files.isDirectory(directory)) {
            throw new PeftFormatException(directory + ": not a directory");
        }
        Path configFile = directory.resolve(CONFIG_FILE);
        Path weightsFile = directory.resolve(WEIGHTS_FILE);
        if (!Files.exists(weightsFile)) {
            if (Files.exists(directory.resolve(PICKLE_WEIGHTS_FILE))) {
                throw new PeftFormatException(directory + ": has only " + PICKLE_WEIGHTS_FILE
                        + ", a PyTorch pickle, which is not read because unpickling can run arbitrary code;"
                        + " re-save the adapter with save_pretrained(..., safe_serialization=True) to get "
                        + WEIGHTS_FILE);
            }
            throw new PeftFormatException(directory + ": no " + WEIGHTS_FILE);
        }
        if (!Files.exists(configFile)) {
            throw new PeftFormatException(directory + ": no " + CONFIG_FILE);
        }
        LoraAdapterConfig config = LoraAdapterConfig.read(configFile);
        try (SafetensorsFile weights = SafetensorsFile.open(weightsFile)) {
            return new PeftAdapter(config, readModules(weightsFile, weights, config));
        }
    }

    private static Map<String, LoraWeights> readModules(Path file, SafetensorsFile weights, LoraAdapterConfig config)
            throws IOException {
        Map<String, TensorInfo> aByModule = new LinkedHashMap<>();
        Map<String, TensorInfo> bByModule = new LinkedHashMap<>();
        List<String> unsupported = new ArrayList<>();
        for (TensorInfo tensor : weights.tensors()) {
            String key = tensor.name();
            String modulePath = modulePathOf(key);
            if (modulePath == null) {
                unsupported.add("'" + key + "' (" + whyUnsupported(key) + ")");
            } else if (key.endsWith(A_SUFFIX)) {
                aByModule.put(modulePath, tensor);
            } else {
                bByModule.put(modulePath, tensor);
            }
        }
        if (!unsupported.isEmpty()) {
            String listed = String.join(", ", unsupported.subList(0, Math.min(MAX_LISTED_KEYS, unsupported.size())));
            String more = unsupported.size() > MAX_LISTED_KEYS ? " and " + (unsupported.size() - MAX_LISTED_KEYS) + " more" : "";
            throw new PeftFormatException(file + ": only lora_A/lora_B weights are supported, but it holds " + listed + more);
        }
        for (String modulePath : bByModule.keySet()) {
            if (!aByModule.containsKey(modulePath)) {
                throw new PeftFormatException(file + ": module '" + modulePath + "' has " + loraBKey(modulePath)
                        + " but no " + loraAKey(modulePath));
            }
        }

        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (Map.Entry<String, TensorInfo> entry : aByModule.entrySet()) {
            String modulePath = entry.getKey();
            TensorInfo a = entry.getValue();
            TensorInfo b = bByModule.get(modulePath);
            if (b == null) {
                throw new PeftFormatException(file + ": module '" + modulePath + "' has " + a.name()
                        + " but no " + loraBKey(modulePath));
            }
            checkFloatMatrix(file, a);
            checkFloatMatrix(file, b);
            long r = a.dim(0);
            long in = a.dim(1);
            long out = b.dim(0);
            if (b.dim(1) != r) {
                throw new PeftFormatException(file + ": module '" + modulePath + "': lora_A is " + shape(a)
                        + " (rank " + r + ") but lora_B is " + shape(b) + "; lora_B must be [out, " + r + "]");
            }
            int expected = config.rankFor(modulePath);
            if (r != expected) {
                throw new PeftFormatException(file + ": module '" + modulePath + "' has rank " + r + " but "
                        + CONFIG_FILE + " gives it r=" + expected
                        + (config.rankPattern().isEmpty() ? "" : " (after rank_pattern)"));
            }
            if (in == 0 || out == 0 || in > Integer.MAX_VALUE || out > Integer.MAX_VALUE) {
                throw new PeftFormatException(file + ": module '" + modulePath + "' has unusable dimensions: lora_A "
                        + shape(a) + ", lora_B " + shape(b));
            }
            modules.put(modulePath, new LoraWeights(modulePath, (int) r, (int) in, (int) out,
                    weights.readFloat32(a.name()), weights.readFloat32(b.name())));
        }
        return modules;
    }

    /** The module path of a lora_A/lora_B key, or null for any other key. */
    private static String modulePathOf(String key) {
        if (!key.startsWith(KEY_PREFIX)) {
            return null;
        }
        String suffix = key.endsWith(A_SUFFIX) ? A_SUFFIX : key.endsWith(B_SUFFIX) ? B_SUFFIX : null;
        if (suffix == null || key.length() <= KEY_PREFIX.length() + suffix.length()) {
            return null;
        }
        return key.substring(KEY_PREFIX.length(), key.length() - suffix.length());
    }

    private static String whyUnsupported(String key) {
        if (key.contains(".lora_magnitude_vector")) {
            return "DoRA magnitude vector; DoRA is not supported";
        }
        if (key.contains(".lora_embedding_A") || key.contains(".lora_embedding_B")) {
            return "LoRA on an embedding layer is not supported";
        }
        if (key.endsWith(".lora_B.bias")) {
            return "lora_bias is not supported";
        }
        if (!key.startsWith(KEY_PREFIX)) {
            return "PEFT keys start with '" + KEY_PREFIX + "'";
        }
        return "not a LoRA factor; modules_to_save copies and other tensors are not supported";
    }

    private static void checkFloatMatrix(Path file, TensorInfo tensor) throws PeftFormatException {
        if (tensor.rank() != 2) {
            throw new PeftFormatException(file + ": tensor '" + tensor.name() + "' has shape " + shape(tensor)
                    + "; LoRA factors are 2-D");
        }
        DType dtype = tensor.dtype();
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new PeftFormatException(file + ": tensor '" + tensor.name() + "' has dtype " + dtype
                    + "; LoRA factors must be F32, F16 or BF16");
        }
    }

    private static String shape(TensorInfo tensor) {
        return Arrays.toString(tensor.shape());
    }

    /**
     * Writes {@code adapter_model.safetensors} (tensors as {@code dtype}: F32, F16 or BF16; metadata
     * {@code {"format": "pt"}}, which transformers' loaders expect) and {@code adapter_config.json} into
     * {@code directory}, creating it if needed. Each file is replaced atomically; the config goes
     * last, so a directory with a new config never pairs it with missing weights.
     */
    public void write(Path directory, DType dtype) throws IOException {
        var writer = new SafetensorsWriter().putMetadata("format", "pt");
        for (LoraWeights weights : modules.values()) {
            String modulePath = weights.modulePath();
            writer.add(loraAKey(modulePath), weights.a(), dtype, weights.r(), weights.inFeatures());
            writer.add(loraBKey(modulePath), weights.b(), dtype, weights.outFeatures(), weights.r());
        }
        Files.createDirectories(directory);
        writer.write(directory.resolve(WEIGHTS_FILE));
        config.write(directory.resolve(CONFIG_FILE));
    }
}
