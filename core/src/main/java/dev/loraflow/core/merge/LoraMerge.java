package dev.loraflow.core.merge;

import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.DigestingChannel;
import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.io.LargeFileWriter;
import dev.loraflow.core.io.ReadAlongDigest;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.LinearModule;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.peft.LoraWeights;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.HalfFloats;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import dev.loraflow.core.safetensors.ShardedSafetensors;
import dev.loraflow.core.safetensors.TensorInfo;
import dev.loraflow.core.train.TrainingCheckpoint;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.security.MessageDigest;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Folds a PEFT LoRA adapter into its base: {@code W = W0 + s·B·A} for every adapted module, transposed
 * for GPT-2's Conv1D weights (stored [in, out]), with s = α/r or α/√r (rsLoRA) and r, α per module after
 * {@code rank_pattern}/{@code alpha_pattern}. The sum is formed in float32 whatever the base's dtype and
 * written in the base's dtype or the one asked for.
 *
 * <p>Nothing is merged until every check passes: every adapted module exists in the base with the shapes the
 * factors need, and no factor or merged value is NaN or Inf; and no merged model is left behind unless the base's
 * digest is the one the adapter was trained on (when known: the base is hashed as the merge is written, and the
 * output is dropped on a mismatch). A failed check is a {@link MergeException} naming the module.
 *
 * <p>The output is a Hugging Face model directory that Transformers loads like the base:
 * {@code config.json} (the base's, byte for byte), {@code model.safetensors} with exactly the base
 * files' tensor names (GPT-2's {@code transformer.} prefix kept or not as the base has it; a tied
 * {@code lm_head.weight} left out, as {@code save_pretrained} does), and the base's tokenizer files.
 *
 * <p>The merge streams: each tensor is read, merged and written in the order of the output file,
 * unchanged ones copied from the base's file through a small buffer (never mapped whole), so memory holds about one
 * tensor (plus the adapter) whatever the model's size. The output's SHA-256 is taken as it is written, on a thread
 * of its own ({@link DigestingChannel}), and it goes to the disk by the route for its size ({@link LargeFileWriter});
 * a base whose digest the adapter records is hashed from the same reads that copy it ({@link ReadAlongDigest}), on
 * the channel's reading thread, so each byte of the base is read once and each file hashed once, and neither digest
 * holds up the reads and the update.
 */
public final class LoraMerge {

    /** Tokenizer and generation files a model directory may carry, copied as they are. */
    public static final List<String> COPIED_FILES = List.of("tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
            "generation_config.json", "chat_template.jinja");
    /** safetensors metadata of the merged file, beside {@code format: pt}. */
    public static final String BASE_MODEL_SHA256 = "loraflow.base_model_sha256";
    public static final String ADAPTER_SHA256 = "loraflow.adapter_sha256";

    private static final String CONFIG_FILE = "config.json";
    private static final ValueLayout.OfShort BF16_BITS = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The dtype merged tensors are written in. */
    public enum OutputDType {
        /** Each tensor keeps the dtype it has in the base. */
        BASE,
        F32,
        F16,
        BF16;

        /** {@code base}, {@code f32}, {@code f16} or {@code bf16}, in any case. */
        public static OutputDType parse(String text) {
            for (OutputDType dtype : values()) {
                if (dtype.name().equalsIgnoreCase(text)) {
                    return dtype;
                }
            }
            throw new IllegalArgumentException("dtype must be f32, f16, bf16 or base, got '" + text + "'");
        }

        DType of(DType stored) {
            return switch (this) {
                case BASE -> stored;
                case F32 -> DType.F32;
                case F16 -> DType.F16;
                case BF16 -> DType.BF16;
            };
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * @param dtype              what the merged file's float tensors are stored as
     * @param expectedBaseSha256 the {@link ModelDigest} the adapter was trained on, or null when unknown
     */
    public record Options(OutputDType dtype, String expectedBaseSha256) {
        public Options {
            Objects.requireNonNull(dtype, "dtype");
        }

        public static Options defaults() {
            return new Options(OutputDType.BASE, null);
        }

        public Options withDtype(OutputDType value) {
            return new Options(value, expectedBaseSha256);
        }

        public Options withExpectedBaseSha256(String value) {
            return new Options(dtype, value);
        }
    }

    /**
     * One adapted module as merged.
     *
     * @param modulePath  PEFT's path, e.g. {@code transformer.h.0.attn.c_attn}
     * @param tensor      the canonical name of the weight it changes, e.g. {@code h.0.attn.c_attn.weight}
     * @param fanInFanOut the weight is stored [in, out], so the update was transposed
     */
    public record MergedModule(String modulePath, String tensor, int rank, double alpha, double scaling,
                               boolean fanInFanOut) {}

    /**
     * @param baseSha256    the base's {@link ModelDigest}
     * @param adapterSha256 SHA-256 of the adapter's adapter_model.safetensors
     * @param dtypes        the dtypes the merged file's tensors are stored in
     * @param mergeNanos    checks, merge and writing
     * @param weightsSha256 SHA-256 of the merged model.safetensors, taken as it was written
     */
    public record Result(Path directory, String baseSha256, String adapterSha256, List<MergedModule> modules,
                         Set<DType> dtypes, long mergeNanos, String weightsSha256) {}

    private LoraMerge() {}

    /**
     * What a merge of {@code baseDirectory} needs, from its headers: the output's bytes on disk, and the
     * heap for the largest tensor as float32 (a merged tensor is formed whole, then written).
     */
    public record Requirements(long outputBytes, long largestTensorFloat32Bytes) {

        /**
         * Ends the command with one line when the heap cannot hold the largest tensor as float32 twice (merged,
         * and its converted copy on the way out) beside the adapter, or the disk where {@code out} goes cannot
         * hold the merged file.
         *
         * @param adapterBytes the size of adapter_model.safetensors
         */
        public void require(Path out, long adapterBytes) throws IOException {
            Resources.requireHeap(heapBytes(adapterBytes), "the largest tensor as float32 twice, and the adapter", "try " + Resources.LARGER_HEAP);
            Resources.requireDisk(out, outputBytes, "the merged model.safetensors");
        }

        /** The heap a merge holds: the largest tensor as float32 twice beside the adapter; the base streams through. */
        public long heapBytes(long adapterBytes) {
            return 2 * largestTensorFloat32Bytes + 4 * adapterBytes + (64L << 20);
        }
    }

    public static Requirements requirements(Path baseDirectory, Options options) throws IOException {
        long output = 0;
        long largest = 0;
        try (ShardedSafetensors base = ShardedSafetensors.open(baseDirectory)) {
            for (String name : base.tensorNames()) {
                TensorInfo info = base.info(name);
                DType dtype = info.dtype().isReadableAsFloat32() ? options.dtype().of(info.dtype()) : info.dtype();
                output += info.numel() * dtype.byteSize();
                largest = Math.max(largest, 4 * info.numel());
            }
        }
        return new Requirements(output, largest);
    }

    /**
     * A merge of a PEFT adapter directory: when the directory is a training checkpoint (of {@code train} or the
     * trainer service), the base digest it records is checked as the base is read unless {@code options} names one
     * ({@link TrainingCheckpoint#recordedBaseSha256}).
     */
    public static Result mergeDirectory(Path baseDirectory, Path adapterDirectory, Path outDirectory, Options options)
            throws IOException {
        PeftAdapter adapter = PeftAdapter.read(adapterDirectory);
        if (options.expectedBaseSha256() == null) {
            options = options.withExpectedBaseSha256(
                    TrainingCheckpoint.recordedBaseSha256(adapterDirectory).orElse(null));
        }
        return merge(baseDirectory, adapter, Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)),
                outDirectory, options);
    }

    /**
     * Merges {@code adapter} into the model in {@code baseDirectory} and writes the result into
     * {@code outDirectory}, which must be new or empty: a model directory is never overwritten.
     *
     * @param adapterSha256 recorded in the merged file's metadata; may be null
     * @throws MergeException if a check refuses the adapter; nothing is written then
     */
    public static Result merge(Path baseDirectory, PeftAdapter adapter, String adapterSha256, Path outDirectory,
                               Options options) throws IOException {
        long start = System.nanoTime();
        requireNewOrEmpty(outDirectory);
        // The merged file's header names the base's digest. Known from the adapter's record, the base is hashed from
        // the very reads that copy it into the merged file (read once, hashed once) and checked when the last byte is
        // written, before anything is forced to disk or renamed into place; unknown, the base is hashed first.
        String expectedBaseSha256 = options.expectedBaseSha256();
        String baseSha256 = expectedBaseSha256 != null ? expectedBaseSha256 : ModelDigest.of(baseDirectory);
        return merge(baseDirectory, adapter, adapterSha256, outDirectory, options, baseSha256, expectedBaseSha256 != null,
                start);
    }

    private static void requireBase(Path baseDirectory, String expected, String actual) throws MergeException {
        if (!expected.equals(actual)) {
            throw new MergeException(MergeException.Kind.BASE_SHA256_MISMATCH, "the adapter was trained on the base with"
                    + " SHA-256 " + expected + ", but " + baseDirectory + " has SHA-256 " + actual);
        }
    }

    /**
     * @param checkBase hash the base as it is read and refuse it unless its digest is {@code baseSha256}
     */
    private static Result merge(Path baseDirectory, PeftAdapter adapter, String adapterSha256, Path outDirectory,
                                Options options, String baseSha256, boolean checkBase, long start) throws IOException {
        ModelConfig config = ModelConfig.read(baseDirectory.resolve(CONFIG_FILE));
        ModelLayout layout = ModelLayout.of(config);
        List<Target> targets = plan(layout, adapter);
        Map<String, Target> targetsByTensor = new LinkedHashMap<>();
        targets.forEach(target -> targetsByTensor.put(target.tensor, target));

        var writer = new SafetensorsWriter().putMetadata("format", "pt").putMetadata(BASE_MODEL_SHA256, baseSha256);
        if (adapterSha256 != null) {
            writer.putMetadata(ADAPTER_SHA256, adapterSha256);
        }
        Set<DType> written = EnumSet.noneOf(DType.class);
        MessageDigest weightsDigest = Sha256.newDigest();
        MergedBuffer merged = new MergedBuffer();
        try (ShardedSafetensors base = ShardedSafetensors.open(baseDirectory)) {
            Map<Path, ReadAlongDigest> baseReads = new HashMap<>();
            if (checkBase) {
                base.shards().forEach(shard -> baseReads.put(shard.path(), new ReadAlongDigest(shard.path())));
                writer.onRegionRead((file, offset, bytes) -> baseReads.get(file).read(offset, bytes));
            }
            Map<String, long[]> found = new LinkedHashMap<>();
            for (String name : base.tensorNames()) {
                found.put(name, base.info(name).shape());
            }
            // Names each canonical tensor's checkpoint name; refuses a base that is not a whole model.
            Map<String, String> checkpointNames = layout.validate(found, base.source().toString());
            for (String name : base.tensorNames()) {
                String canonical = layout.resolveName(name);
                if (config.tieWordEmbeddings() && canonical.equals(ModelLayout.OUTPUT_HEAD + ".weight")) {
                    continue;
                }
                TensorInfo info = base.info(name);
                DType stored = info.dtype();
                DType dtype = stored.isReadableAsFloat32() ? options.dtype().of(stored) : stored;
                Target target = name.equals(checkpointNames.get(canonical)) ? targetsByTensor.get(canonical) : null;
                if (target == null && dtype == stored) {
                    SafetensorsFile shard = base.shardOf(name);
                    writer.addFileRegion(name, stored, shard.path(), shard.fileOffset(name), info.shape());
                } else if (stored == DType.BF16 && dtype == DType.BF16
                        && info.byteSize() <= SafetensorsWriter.MAX_TRANSFORMED_BYTES) {
                    // merged in its own bytes, read through a buffer (hashed beside the merge, so the merged bytes go
                    // to a buffer of their own): no float32 copy, no mapped pages
                    SafetensorsFile shard = base.shardOf(name);
                    writer.addFileRegion(name, dtype, shard.path(), shard.fileOffset(name), storedBytes -> {
                        ByteBuffer bytes = merged.take(storedBytes.remaining());
                        target.mergeBf16(MemorySegment.ofBuffer(storedBytes), MemorySegment.ofBuffer(bytes));
                        return bytes;
                    }, info.shape());
                } else if (dtype == DType.F64) {
                    // float64 is rare enough in checkpoints to be converted eagerly
                    float[] weight = base.readFloat32(name);
                    if (target != null) {
                        target.merge(weight, weight);
                    }
                    add(writer, name, weight, dtype, info.shape());
                } else {
                    writer.addLazy(name, dtype, () -> {
                        float[] weight = base.readFloat32(name);
                        if (target != null) {
                            target.merge(weight, weight);
                        }
                        return weight;
                    }, info.shape());
                }
                written.add(dtype);
            }
            boolean created = !Files.exists(outDirectory);
            Files.createDirectories(outDirectory);
            try {
                AtomicFiles.writeLarge(outDirectory.resolve(SafetensorsWriter.SINGLE_FILE), writer.dataBytes(), file -> {
                    try (DigestingChannel digesting = new DigestingChannel(file::write, weightsDigest)) {
                        writer.writeTo(digesting);
                    }
                    if (checkBase) {
                        Map<Path, String> shardDigests = new HashMap<>();
                        for (ReadAlongDigest baseRead : baseReads.values()) {
                            shardDigests.put(ModelDigest.absolute(baseRead.file()), baseRead.finish());
                        }
                        requireBase(baseDirectory, baseSha256, ModelDigest.of(baseDirectory, shardDigests));
                    }
                });
            } catch (IOException | RuntimeException e) {
                // a module found not to merge (NaN/Inf) while streaming, or the wrong base: leave nothing behind
                if (created) {
                    FileTrees.delete(outDirectory);
                }
                throw e;
            }
        }
        for (String file : COPIED_FILES) {
            Path source = baseDirectory.resolve(file);
            if (Files.isRegularFile(source)) {
                Files.copy(source, outDirectory.resolve(file));
            }
        }
        // Last: a directory with a config.json is a complete model.
        Files.copy(baseDirectory.resolve(CONFIG_FILE), outDirectory.resolve(CONFIG_FILE));
        return new Result(outDirectory, baseSha256, adapterSha256, targets.stream().map(Target::describe).toList(),
                Collections.unmodifiableSet(written), System.nanoTime() - start, Sha256.hex(weightsDigest));
    }

    /**
     * The merged weights of a model held in memory, float32 throughout.
     *
     * @param weights canonical name → values, as {@code CheckpointWeights.read} gives them; never written
     * @return the same map with each adapted weight replaced by a new merged array; the other arrays are
     *     the given ones, shared
     */
    public static Map<String, float[]> mergeWeights(ModelLayout layout, Map<String, float[]> weights, PeftAdapter adapter)
            throws MergeException {
        List<Target> targets = plan(layout, adapter);
        Map<String, float[]> merged = new LinkedHashMap<>(weights);
        for (Target target : targets) {
            float[] base = weights.get(target.tensor);
            if (base == null) {
                throw new MergeException(MergeException.Kind.MISSING_TARGET_MODULE, "the weights have no tensor "
                        + target.tensor + " for the adapted module " + target.modulePath);
            }
            float[] out = new float[base.length];
            target.merge(base, out);
            merged.put(target.tensor, out);
        }
        return Collections.unmodifiableMap(merged);
    }

    /**
     * Checks the adapter against the base's layout, module by module, before anything is merged.
     *
     * @throws MergeException for a module the base lacks, factors that do not fit its weight, an output
     *     head tied to the embeddings, or a NaN/Inf factor
     */
    static List<Target> plan(ModelLayout layout, PeftAdapter adapter) throws MergeException {
        Map<String, LinearModule> modules = new LinkedHashMap<>();
        layout.linearModules().forEach(module -> modules.put(module.path(), module));
        List<Target> targets = new ArrayList<>();
        for (LoraWeights factors : adapter.modules().values()) {
            String path = factors.modulePath();
            LinearModule module = null;
            try {
                module = modules.get(layout.canonicalModulePath(path));
            } catch (IllegalArgumentException notAModulePath) {
                // reported below with the base's module names
            }
            if (module == null) {
                throw new MergeException(MergeException.Kind.MISSING_TARGET_MODULE, "the adapter adapts " + path
                        + ", which the " + layout.config().modelType() + " base does not have; its linear modules are "
                        + "e.g. " + examples(layout));
            }
            if (module.outputLayer() && layout.config().tieWordEmbeddings()) {
                throw new MergeException(MergeException.Kind.UNSUPPORTED, path + ": the output head is tied to the token"
                        + " embedding, so merging into it would change the embedding too");
            }
            String tensor = module.path() + ".weight";
            if (factors.inFeatures() != module.in() || factors.outFeatures() != module.out()) {
                long[] shape = layout.weight(tensor) == null ? new long[] {module.out(), module.in()}
                        : layout.weight(tensor).shape();
                throw new MergeException(MergeException.Kind.SHAPE_MISMATCH, path + ": the adapter's lora_A ["
                        + factors.r() + ", " + factors.inFeatures() + "] and lora_B [" + factors.outFeatures() + ", "
                        + factors.r() + "] update a " + factors.inFeatures() + " → " + factors.outFeatures()
                        + " projection, but the base's " + tensor + " " + Arrays.toString(shape) + " is "
                        + module.in() + " → " + module.out());
            }
            requireFinite(path, "lora_A", factors.a(), factors.inFeatures());
            requireFinite(path, "lora_B", factors.b(), factors.r());
            targets.add(new Target(path, tensor, module, factors, adapter.config().alphaFor(path),
                    adapter.config().scaling(path)));
        }
        return targets;
    }

    private static String examples(ModelLayout layout) {
        return layout.linearModules().stream().limit(4).map(module -> layout.peftModulePath(module.path()))
                .reduce((a, b) -> a + ", " + b).orElse("none");
    }

    private static void requireFinite(String path, String factor, float[] values, int cols) throws MergeException {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new MergeException(MergeException.Kind.NON_FINITE, path + ": " + factor + "[" + i / cols + ", "
                        + i % cols + "] is " + values[i] + "; the adapter is broken and is not merged");
            }
        }
    }

    /** A module to merge: its weight, factors and scaling. */
    static final class Target {
        final String modulePath;
        final String tensor;
        final LinearModule module;
        final LoraWeights factors;
        final double alpha;
        final double scaling;

        Target(String modulePath, String tensor, LinearModule module, LoraWeights factors, double alpha, double scaling) {
            this.modulePath = modulePath;
            this.tensor = tensor;
            this.module = module;
            this.factors = factors;
            this.alpha = alpha;
            this.scaling = scaling;
        }

        MergedModule describe() {
            return new MergedModule(modulePath, tensor, factors.r(), alpha, scaling, module.fanInFanOut());
        }

        /**
         * out = w + s·B·A ([out, in]), or w + s·Aᵀ·Bᵀ ([in, out]) for a fan-in-fan-out weight; out may be w.
         *
         * @throws MergeException if a merged value is NaN or Inf
         */
        void merge(float[] w, float[] out) throws MergeException {
            Update update = update();
            long bad = RankUpdate.apply(w, update.coefficients, update.basis, out, update.rows, update.cols, factors.r());
            if (bad >= 0) {
                throw nonFinite(out[(int) bad], bad, update.cols);
            }
        }

        /**
         * The same merge on a bfloat16 weight {@code w}, into {@code out} (as large; it may be w), rounded to
         * bfloat16: the bytes that widening it, {@link #merge(float[], float[])} and rounding give.
         *
         * @throws MergeException if a merged value is NaN or Inf
         */
        void mergeBf16(MemorySegment w, MemorySegment out) throws MergeException {
            Update update = update();
            long bad = RankUpdate.applyBf16(w, out, update.coefficients, update.basis, update.rows, update.cols,
                    factors.r());
            if (bad >= 0) {
                throw nonFinite(HalfFloats.fromBf16(out.getAtIndex(BF16_BITS, bad)), bad, update.cols);
            }
        }

        private MergeException nonFinite(float value, long index, int cols) {
            return new MergeException(MergeException.Kind.NON_FINITE, modulePath + ": merging gives " + value
                    + " at " + tensor + "[" + index / cols + ", " + index % cols + "]; the adapter overflows the"
                    + " weight and is not merged");
        }

        /** The weight's update as {@link RankUpdate} takes it: coefficients [rows, r] times basis [r, cols]. */
        private record Update(float[] coefficients, float[] basis, int rows, int cols) {}

        private Update update() {
            int r = factors.r();
            int in = factors.inFeatures();
            int outFeatures = factors.outFeatures();
            float s = (float) scaling;
            float[] a = factors.a();
            float[] b = factors.b();
            if (module.fanInFanOut()) {
                // W[j, o] += Σ_k (s·A[k, j])·B[o, k]: coefficients s·Aᵀ [in, r], basis Bᵀ [r, out]
                float[] coefficients = new float[in * r];
                float[] basis = new float[r * outFeatures];
                for (int k = 0; k < r; k++) {
                    for (int j = 0; j < in; j++) {
                        coefficients[j * r + k] = s * a[k * in + j];
                    }
                    for (int o = 0; o < outFeatures; o++) {
                        basis[k * outFeatures + o] = b[o * r + k];
                    }
                }
                return new Update(coefficients, basis, in, outFeatures);
            }
            // W[o, j] += Σ_k (s·B[o, k])·A[k, j]: coefficients s·B [out, r], basis A [r, in]
            float[] coefficients = new float[outFeatures * r];
            for (int i = 0; i < coefficients.length; i++) {
                coefficients[i] = s * b[i];
            }
            return new Update(coefficients, a, outFeatures, in);
        }
    }

    /** One direct buffer, grown to the largest tensor merged into it and reused: a merged tensor's bytes. */
    private static final class MergedBuffer {
        private ByteBuffer buffer = ByteBuffer.allocateDirect(0);

        ByteBuffer take(int bytes) {
            if (buffer.capacity() < bytes) {
                buffer = ByteBuffer.allocateDirect(bytes);
            }
            return buffer.clear().limit(bytes);
        }
    }

    private static void add(SafetensorsWriter writer, String name, float[] values, DType dtype, long[] shape) {
        if (dtype == DType.F64) {
            ByteBuffer bytes = ByteBuffer.allocate(values.length * Double.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            for (float value : values) {
                bytes.putDouble(value);
            }
            writer.addRaw(name, DType.F64, bytes.array(), shape);
        } else {
            writer.add(name, values, dtype, shape);
        }
    }

    private static void requireNewOrEmpty(Path directory) throws IOException {
        if (!Files.exists(directory)) {
            return;
        }
        if (!Files.isDirectory(directory)) {
            throw new FileAlreadyExistsException(directory.toString(), null, "not a directory");
        }
        try (Stream<Path> existing = Files.list(directory)) {
            if (existing.findAny().isPresent()) {
                throw new FileAlreadyExistsException(directory.toString(), null,
                        "not empty; a merged model is only written into an empty or new directory");
            }
        }
    }
}
