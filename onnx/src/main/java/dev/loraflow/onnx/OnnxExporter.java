package dev.loraflow.onnx;

import dev.loraflow.core.io.Resources;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.LinearModule;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.WeightSpec;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.ShardedSafetensors;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;

/**
 * Exports a causal LM as one ONNX graph that serves prefill and KV-cached decoding of batched,
 * right-padded requests, with the input and output names Hugging Face Optimum uses and each layer's attention one
 * {@code com.microsoft.GroupQueryAttention} (see the package's description for the interface).
 *
 * <p>Merged export (the default): every adapter is folded into its base weight by core's
 * {@link CausalLanguageModel#merge()}, so the graph is the base model's graph with other numbers and runs
 * exactly as fast. Un-merged export: the base weights, and for each adapted module three inputs,
 * {@code lora.<PEFT module path>.A} [lora_slots, r, in], {@code .B} [lora_slots, out, r] and {@code .scaling}
 * [lora_slots, 1, 1] (e.g. {@code lora.transformer.h.0.attn.c_attn.A}) with {@code lora.slot} [lora_rows], each
 * row's slot, so one session serves the base model and any adapters of those targets, each row its own (see
 * the package's description); {@link LoraInputs} makes the feeds from a PEFT adapter, rank 0 (no update) where none.
 *
 * <p>{@code metadata_props}: {@value #ARCHITECTURE}, {@value #MODEL_TYPE}, {@value #BASE_MODEL_SHA256},
 * and with an adapter {@value #ADAPTER_CHECKPOINT_ID}, {@value #ADAPTER_SHA256}, {@value #LORA_CONFIG}
 * (adapter_config.json), {@value #LORA_MERGED}; quantized, {@value #QUANTIZATION}; always {@value GraphNames#KV_CACHE} and {@value #LORAFLOW_VERSION}.
 *
 * <p>Quantized export ({@link WeightQuantization}): the linear weights as int8 or int4, the LoRA inputs of an
 * un-merged export float32.
 */
public final class OnnxExporter {

    public static final int DEFAULT_OPSET = 17;
    public static final int MIN_OPSET = 17;
    public static final int MAX_OPSET = 21;
    /** Weights above this many bytes go to an external data file; protobuf cannot hold 2 GiB. */
    public static final long EXTERNAL_DATA_THRESHOLD = 2_000_000_000L;
    /** Tensors smaller than this stay inside the .onnx even with external data, as onnx's own converter does. */
    public static final long EXTERNAL_TENSOR_MIN_BYTES = 1024;
    /** Beside FILE.onnx: FILE.onnx_data, as Optimum and torch.onnx name it. */
    public static final String EXTERNAL_DATA_SUFFIX = "_data";

    public static final String ARCHITECTURE = "architecture";
    public static final String MODEL_TYPE = "model_type";
    public static final String BASE_MODEL_SHA256 = "base_model_sha256";
    public static final String ADAPTER_CHECKPOINT_ID = "adapter_checkpoint_id";
    public static final String ADAPTER_SHA256 = "adapter_sha256";
    public static final String LORA_CONFIG = "lora_config";
    public static final String LORA_MERGED = "lora_merged";
    public static final String LORAFLOW_VERSION = "loraflow_version";
    /** How the weights are stored, e.g. "int4 block 32 symmetric accuracy_level 4, embeddings f32"; absent for float32. */
    public static final String QUANTIZATION = "quantization";

    /** Where the weights go. */
    public enum ExternalData {
        /** Inside the .onnx unless they pass {@link #EXTERNAL_DATA_THRESHOLD}. */
        AUTO,
        ALWAYS,
        NEVER
    }

    /**
     * @param opset     ONNX opset, {@value #MIN_OPSET} (LayerNormalization) to {@value #MAX_OPSET}
     * @param unmerged  adapters as graph inputs instead of folded into the weights
     */
    public record Options(int opset, boolean unmerged, ExternalData externalData, WeightQuantization quantization) {
        public Options {
            if (opset < MIN_OPSET || opset > MAX_OPSET) {
                throw new IllegalArgumentException("opset " + opset + " is not supported; use " + MIN_OPSET + " to "
                        + MAX_OPSET + " (" + DEFAULT_OPSET + " by default)");
            }
            Objects.requireNonNull(externalData, "externalData");
            Objects.requireNonNull(quantization, "quantization");
        }

        public static Options defaults() {
            return new Options(DEFAULT_OPSET, false, ExternalData.AUTO, WeightQuantization.none());
        }

        public Options withOpset(int value) {
            return new Options(value, unmerged, externalData, quantization);
        }

        public Options withUnmerged(boolean value) {
            return new Options(opset, value, externalData, quantization);
        }

        public Options withExternalData(ExternalData value) {
            return new Options(opset, unmerged, value, quantization);
        }

        public Options withQuantization(WeightQuantization value) {
            return new Options(opset, unmerged, externalData, value);
        }
    }

    /**
     * Where the adapter came from, for the metadata; all null for a base model.
     *
     * @param baseModelSha256     see {@link #weightsSha256}
     * @param adapterCheckpointId the checkpoint's id as the platform knows it
     * @param adapterSha256       SHA-256 of adapter_model.safetensors
     */
    public record Provenance(String baseModelSha256, String adapterCheckpointId, String adapterSha256) {}

    /**
     * @param model        the .onnx file
     * @param externalData the weights file beside it, or null when the weights are inside
     * @param loraInputs   the adapter inputs of an un-merged graph (A, B, scaling per module), else empty
     * @param exportNanos  building and writing the graph, merge included
     * @param modelSha256  SHA-256 of the .onnx file, taken as it was written
     * @param externalDataSha256 SHA-256 of the external data file, taken as it was written; null without one
     */
    public record Result(Path model, Path externalData, Map<String, String> metadata, List<String> loraInputs,
                         long exportNanos, String modelSha256, String externalDataSha256) {}

    /**
     * What exporting a model directory takes, from its config and checkpoint header alone: the disk the graph
     * fills (4 bytes per parameter as float32, an 8 B model's 32 GB; a quantized graph its own size, an 8 B
     * model's about 8.7 GB as int4 with float32 embeddings) and the heap the export holds.
     *
     * @param diskBytes the .onnx and its external data together, at most
     * @param heapBytes the float32 tensors held on the heap, the largest module's weight formed whole (merged or
     *                  quantized), the quantized weights (built before they are written), the adapter and the graph
     * @param quantization how the graph stores its linear weights
     */
    public record Requirements(long diskBytes, long heapBytes, WeightQuantization quantization) {

        /** Ends the command with one line when the disk where {@code out} goes or the heap is too small. */
        public void require(Path out) throws IOException {
            Resources.requireDisk(out, diskBytes, quantization.quantized()
                    ? "the graph's " + quantization.precision().label() + " weights and float32 tensors"
                    : "the graph's weights, 4 bytes per parameter");
            Resources.requireHeap(heapBytes, "the float32 tensors held, the largest module's weight, the quantized"
                    + " weights, the adapter and the graph", "try " + Resources.LARGER_HEAP);
        }
    }

    /** {@link #requirements(Path, WeightQuantization)} of a float32 export. */
    public static Requirements requirements(Path modelDirectory) throws IOException {
        return requirements(modelDirectory, WeightQuantization.none());
    }

    /**
     * @param quantization a quantized export quantizes one module's float32 weight at a time (widened or merged,
     *                     the largest linear module's worth) and holds every quantized weight with its scales until
     *                     the graph is written; what it does not quantize it writes as float32, widened a chunk at a
     *                     time from the mapped checkpoint (the token embedding and a float32 head are never whole on
     *                     the heap: an 8 B model's are 2.1 GB each as float32)
     */
    public static Requirements requirements(Path modelDirectory, WeightQuantization quantization) throws IOException {
        return requirements(modelDirectory, null, quantization);
    }

    /**
     * {@link #requirements(Path, WeightQuantization)} of an export with the adapter in {@code adapterDirectory} (null:
     * none), which holds the adapter as float32 twice (read, and in the model) and, where it adapts the output head,
     * forms the merged head whole.
     */
    public static Requirements requirements(Path modelDirectory, Path adapterDirectory, WeightQuantization quantization)
            throws IOException {
        ModelConfig config = ModelConfig.read(modelDirectory.resolve("config.json"));
        ModelLayout layout = ModelLayout.of(config);
        CheckpointWeights.Footprint footprint = CheckpointWeights.footprint(modelDirectory, layout, Quantization.NONE);
        long adapterHeap = 0;
        boolean headAdapted = false;
        if (adapterDirectory != null) {
            Path adapterWeights = adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE);
            adapterHeap = 4 * Files.size(adapterWeights);
            try (SafetensorsFile adapterFile = SafetensorsFile.open(adapterWeights)) {
                headAdapted = adapterFile.tensorNames().contains(PeftAdapter.loraAKey(ModelLayout.OUTPUT_HEAD));
            }
        }
        // The largest float32 weight formed whole: a linear module's, merged or quantized; the head's only where it is
        // quantized or adapted.
        long largest = 0;
        Map<String, LinearModule> modules = new LinkedHashMap<>();
        for (LinearModule module : layout.linearModules()) {
            modules.put(module.path() + ".weight", module);
            if (!module.outputLayer() || quantization.embeddingsInt8() || headAdapted) {
                largest = Math.max(largest, 4L * module.in() * module.out());
            }
        }
        long quantizedBytes = 0;
        long floatBytes = 0;
        for (WeightSpec spec : layout.weights()) {
            long stored = quantizedBytes(spec, modules.get(spec.name()), quantization);
            if (stored < 0) {
                floatBytes += 4 * spec.numel();
            } else {
                quantizedBytes += stored;
            }
        }
        // The rotary cos and sin tables of the decoders, [max_positions, head_dim / 2] float32 each.
        long rotary = config instanceof DecoderConfig ? 4L * config.maxPositions() * config.headDim() : 0;
        long weights = floatBytes + quantizedBytes + rotary;
        // The nodes, names and protobuf framing around the weights: a small share of any real model's graph.
        long disk = weights + weights / 64 + (1L << 20);
        return new Requirements(disk, footprint.heapBytes() + 2 * largest + quantizedBytes + rotary + adapterHeap
                + (64L << 20), quantization);
    }

    /**
     * The bytes a quantized export stores for {@code spec} (as {@link DecoderGraph} quantizes: the linear weights;
     * the token embedding and an untied head only with int8 embeddings), or −1 for a tensor written as float32.
     */
    private static long quantizedBytes(WeightSpec spec, LinearModule module, WeightQuantization quantization) {
        if (!quantization.quantized()) {
            return -1;
        }
        long[] shape = spec.shape();
        return switch (spec.role()) {
            case LINEAR_WEIGHT -> module == null ? -1 : quantization.storedBytes(module.in(), module.out());
            case OUTPUT_HEAD -> quantization.embeddingsInt8() && module != null
                    ? quantization.storedBytes(module.in(), module.out()) : -1;
            // int8 per token row, [vocab, hidden] with a scale per token
            case TOKEN_EMBEDDING -> quantization.embeddingsInt8() ? shape[0] * shape[1] + 4 * shape[0] : -1;
            default -> -1;
        };
    }

    private OnnxExporter() {}

    /**
     * The CLI's {@code export-onnx --model DIR [--adapter DIR] [--unmerged] [--opset N] --out FILE.onnx}:
     * loads the model (and adapter), exports it, and names the adapter checkpoint by its directory.
     */
    public static Result exportDirectory(Path modelDirectory, Path adapterDirectory, Options options, Path out)
            throws IOException {
        ModelConfig config = ModelConfig.read(modelDirectory.resolve("config.json"));
        // BF16/F16 matrices stay mapped from the checkpoint and are widened as they are written; unmapped on return, not
        // at a later collection, so that what runs next (a verification's ONNX Runtime session) has the memory.
        try (Arena mapped = Arena.ofShared()) {
            CheckpointWeights.BaseWeights weights = CheckpointWeights.readFrozen(modelDirectory, ModelLayout.of(config),
                    Quantization.NONE, mapped);
            PeftAdapter adapter = adapterDirectory == null ? null : PeftAdapter.read(adapterDirectory);
            CausalLanguageModel model = CausalLanguageModel.create(config, weights.arrays(), weights.frozen(),
                    adapter == null ? null : adapter.config(), 0);
            Provenance provenance;
            if (adapter == null) {
                provenance = new Provenance(weightsSha256(modelDirectory), null, null);
            } else {
                model.loadAdapter(adapter);
                provenance = new Provenance(weightsSha256(modelDirectory), adapterDirectory.toAbsolutePath().normalize()
                        .getFileName().toString(), Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)));
            }
            return export(model, weights.arrays(), weights.frozen(), options, provenance, out);
        }
    }

    /**
     * Exports a model whose adapters are not merged (a merged export merges them and unmerges them again).
     *
     * @param weights the base weights by canonical name, those the model was created from
     * @throws IllegalArgumentException if an un-merged export is asked of a model without adapters
     */
    public static Result export(CausalLanguageModel model, Map<String, float[]> weights, Options options,
                                Provenance provenance, Path out) throws IOException {
        return export(model, weights, Map.of(), options, provenance, out);
    }

    /**
     * {@link #export(CausalLanguageModel, Map, Options, Provenance, Path)} of a model whose base holds
     * some weights as frozen matrices (as {@link CheckpointWeights#readFrozen} loads them): those are
     * widened as they are written, and a merged export merges one module at a time as it writes it, so
     * the export holds about one float32 tensor beyond what the model holds. A failure part way removes
     * what was written.
     *
     * @param frozen the base weights the model holds as frozen matrices, by canonical name
     */
    public static Result export(CausalLanguageModel model, Map<String, float[]> weights, Map<String, FrozenMatrix> frozen,
                                Options options, Provenance provenance, Path out) throws IOException {
        long start = System.nanoTime();
        boolean merged = model.adaptedModules().values().stream().anyMatch(LoRALinear::isMerged);
        if (merged) {
            throw new IllegalArgumentException("the model's adapters are merged; export it un-merged, the exporter merges");
        }
        if (options.unmerged() && model.adaptedModules().isEmpty()) {
            throw new IllegalArgumentException("an un-merged export needs a model with adapters: they decide which modules get LoRA inputs");
        }
        DecoderGraph decoder = CausalLmGraphs.build(model, weights, frozen, options.opset(), options.unmerged(),
                options.quantization());
        Map<String, String> metadata = metadata(model, options, provenance);
        boolean external = switch (options.externalData()) {
            case ALWAYS -> true;
            case NEVER -> false;
            case AUTO -> decoder.graph.initializerBytes() > EXTERNAL_DATA_THRESHOLD;
        };
        Path absolute = out.toAbsolutePath();
        Path externalFile = external ? absolute.resolveSibling(absolute.getFileName() + EXTERNAL_DATA_SUFFIX) : null;
        if (absolute.getParent() != null) {
            Files.createDirectories(absolute.getParent());
        }
        try {
            OnnxGraph.Written written = decoder.graph.write(absolute, irVersion(options.opset()), options.opset(),
                    version(), metadata, externalFile, EXTERNAL_TENSOR_MIN_BYTES);
            return new Result(absolute, externalFile, metadata, decoder.loraInputs(), System.nanoTime() - start,
                    written.modelSha256(), written.externalDataSha256());
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(absolute);
            if (externalFile != null) {
                Files.deleteIfExists(externalFile);
            }
            throw e;
        }
    }

    /**
     * The IR version of each opset's release, the lowest a runtime must read: opset 17 and 18 → IR 8,
     * 19 and 20 → 9, 21 → 10, so that onnx.checker 1.12 and older runtimes accept an opset-17 model.
     */
    static int irVersion(int opset) {
        return switch (opset) {
            case 17, 18 -> 8;
            case 19, 20 -> 9;
            case 21 -> 10;
            default -> throw new IllegalArgumentException("opset " + opset);
        };
    }

    private static Map<String, String> metadata(CausalLanguageModel model, Options options, Provenance provenance) {
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put(ARCHITECTURE, switch (model.config()) {
            case Gpt2Config _ -> Gpt2Config.ARCHITECTURE;
            case DecoderConfig decoder -> decoder.family().architecture();
        });
        metadata.put(MODEL_TYPE, model.config().modelType());
        putIfPresent(metadata, BASE_MODEL_SHA256, provenance.baseModelSha256());
        if (model.loraConfig() != null) {
            putIfPresent(metadata, ADAPTER_CHECKPOINT_ID, provenance.adapterCheckpointId());
            putIfPresent(metadata, ADAPTER_SHA256, provenance.adapterSha256());
            metadata.put(LORA_CONFIG, model.loraConfig().toJson());
            metadata.put(LORA_MERGED, Boolean.toString(!options.unmerged()));
        }
        if (options.quantization().quantized()) {
            metadata.put(QUANTIZATION, options.quantization().describe());
        }
        metadata.put(GraphNames.KV_CACHE, GraphNames.KV_CACHE_RIGHT_PADDED);
        metadata.put(LORAFLOW_VERSION, version());
        return metadata;
    }

    private static void putIfPresent(Map<String, String> metadata, String key, String value) {
        if (value != null) {
            metadata.put(key, value);
        }
    }

    /**
     * SHA-256 of a model directory's weights: of model.safetensors when it has one (what loading reads,
     * and what {@code sha256sum} prints), else of its shards' bytes one after the other in file-name order.
     */
    public static String weightsSha256(Path modelDirectory) throws IOException {
        try (ShardedSafetensors checkpoint = ShardedSafetensors.open(modelDirectory)) {
            List<Path> files = checkpoint.shards().stream().map(SafetensorsFile::path).distinct().sorted().toList();
            if (files.size() == 1) {
                return Sha256.of(files.getFirst());
            }
            MessageDigest digest = Sha256.newDigest();
            byte[] buffer = new byte[1 << 16];
            for (Path file : files) {
                try (InputStream in = Files.newInputStream(file)) {
                    for (int read; (read = in.read(buffer)) > 0; ) {
                        digest.update(buffer, 0, read);
                    }
                }
            }
            return Sha256.hex(digest);
        }
    }

    /** loraflow's version, from the build. */
    public static String version() {
        try (InputStream in = OnnxExporter.class.getResourceAsStream("version.properties")) {
            Properties properties = new Properties();
            properties.load(Objects.requireNonNull(in, "version.properties is missing from the build"));
            return properties.getProperty("loraflow.version");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
