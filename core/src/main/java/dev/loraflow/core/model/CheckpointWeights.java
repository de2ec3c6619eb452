package dev.loraflow.core.model;

import dev.loraflow.core.kernels.FrozenMatrix;
import dev.loraflow.core.kernels.HalfMatrix;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.ShardedSafetensors;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Reads a Hugging Face checkpoint's tensors as float32, keyed by their canonical names. */
public final class CheckpointWeights {

    private CheckpointWeights() {}

    /**
     * Every tensor of {@code layout} from a checkpoint (a model directory, an index file or one
     * safetensors file), F32/F16/BF16/F64 converted to float32. Tensors the layout ignores (GPT-2's
     * causal-mask buffers, a tied {@code lm_head.weight}) are skipped.
     *
     * @return canonical name → values, in layout order
     * @throws CheckpointLayoutException if tensors are missing, unexpected or misshapen
     */
    public static Map<String, float[]> read(Path checkpoint, ModelLayout layout) throws IOException {
        try (ShardedSafetensors tensors = ShardedSafetensors.open(checkpoint)) {
            Map<String, long[]> found = new LinkedHashMap<>();
            for (String name : tensors.tensorNames()) {
                TensorInfo info = tensors.info(name);
                found.put(name, info.shape());
            }
            Map<String, String> checkpointNames = layout.validate(found, tensors.source().toString());
            Map<String, float[]> weights = new LinkedHashMap<>();
            for (var entry : checkpointNames.entrySet()) {
                weights.put(entry.getKey(), tensors.readFloat32(entry.getValue()));
            }
            return Collections.unmodifiableMap(weights);
        }
    }

    /**
     * A base model's weights as a model holds them for training or inference: linear weights (an untied
     * output head, a decoder's token embedding) stored as BF16/F16 stay in the file, mapped, and {@code quantization} replaces
     * the linear weights (never the head) by NF4 or int8 copies off the heap; everything else — and F32
     * linear weights left unquantized — is read into float32 arrays.
     *
     * @param arrays canonical name → float32 values
     * @param frozen canonical name → a frozen matrix, for the tensors not in {@code arrays}
     */
    public record BaseWeights(Map<String, float[]> arrays, Map<String, FrozenMatrix> frozen) {

        /** Bytes of the weights on the Java heap. */
        public long heapBytes() {
            return arrays.values().stream().mapToLong(values -> 4L * values.length).sum();
        }

        /** Bytes of the frozen matrices, mapped or off the heap. */
        public long frozenBytes() {
            return frozen.values().stream().mapToLong(FrozenMatrix::bytes).sum();
        }
    }

    /** Reads {@code checkpoint} as {@link BaseWeights}; the mappings live as long as the matrices are reachable. */
    public static BaseWeights readFrozen(Path checkpoint, ModelLayout layout, Quantization quantization) throws IOException {
        return readFrozen(checkpoint, layout, quantization, Arena.ofAuto());
    }

    /**
     * Reads {@code checkpoint} as {@link BaseWeights} with its mapped and quantized matrices in {@code arena}: closing
     * it unmaps them at once (and the matrices may no longer be used), where an automatic arena waits for a collection.
     */
    public static BaseWeights readFrozen(Path checkpoint, ModelLayout layout, Quantization quantization, Arena arena)
            throws IOException {
        try (ShardedSafetensors tensors = ShardedSafetensors.open(checkpoint)) {
            Map<String, long[]> found = new LinkedHashMap<>();
            for (String name : tensors.tensorNames()) {
                found.put(name, tensors.info(name).shape());
            }
            Map<String, String> checkpointNames = layout.validate(found, tensors.source().toString());
            Map<String, float[]> arrays = new LinkedHashMap<>();
            Map<String, FrozenMatrix> frozen = new LinkedHashMap<>();
            for (var entry : checkpointNames.entrySet()) {
                WeightSpec spec = layout.weight(entry.getKey());
                String stored = entry.getValue();
                DType dtype = tensors.info(stored).dtype();
                Holding holding = holding(layout, spec, dtype, quantization);
                if (holding == Holding.ARRAY) {
                    arrays.put(entry.getKey(), tensors.readFloat32(stored));
                    continue;
                }
                int rows = Math.toIntExact(spec.shape()[0]);
                int cols = Math.toIntExact(spec.shape()[1]);
                HalfMatrix.Format format = dtype == DType.BF16 ? HalfMatrix.Format.BF16 : HalfMatrix.Format.F16;
                if (holding == Holding.MAPPED) {
                    frozen.put(entry.getKey(), new HalfMatrix(tensors.map(stored, arena), rows, cols, format));
                } else if (dtype == DType.F16 || dtype == DType.BF16) {
                    // Mapped only while it is quantized, and unmapped at once: left to the collector, the mappings
                    // of every linear weight would stay resident beside their quantized copies (an 8 B model's 14 GB).
                    try (Arena reading = Arena.ofShared()) {
                        frozen.put(entry.getKey(), quantization.apply(
                                new HalfMatrix(tensors.map(stored, reading), rows, cols, format), arena));
                    }
                } else {
                    frozen.put(entry.getKey(), quantization.apply(
                            FrozenMatrix.of(tensors.readFloat32(stored), rows, cols), arena));
                }
            }
            return new BaseWeights(Collections.unmodifiableMap(arrays), Collections.unmodifiableMap(frozen));
        }
    }

    /** How {@link #readFrozen} holds a tensor. */
    private enum Holding { ARRAY, MAPPED, QUANTIZED }

    /**
     * Linear weights and the untied head stay mapped when stored in 16 bits, and so does the token
     * embedding of the RoPE decoders (only read a row at a time there; GPT-2's tied wte is float32).
     */
    private static Holding holding(ModelLayout layout, WeightSpec spec, DType dtype, Quantization quantization) {
        boolean linear = spec.role() == WeightSpec.Role.LINEAR_WEIGHT;
        boolean matrix = linear || spec.role() == WeightSpec.Role.OUTPUT_HEAD
                || spec.role() == WeightSpec.Role.TOKEN_EMBEDDING && layout.config() instanceof DecoderConfig;
        if (linear && quantization != Quantization.NONE) {
            return Holding.QUANTIZED;
        }
        return matrix && (dtype == DType.F16 || dtype == DType.BF16) ? Holding.MAPPED : Holding.ARRAY;
    }

    /**
     * What {@link #readFrozen} will hold, from the checkpoint's header alone.
     *
     * @param heapBytes   float32 arrays on the Java heap
     * @param mappedBytes tensors left in the file, mapped (page cache: the kernel may evict them)
     * @param nativeBytes quantized weights off the heap, which must stay in memory
     * @param parameters  elements of every tensor
     */
    public record Footprint(long heapBytes, long mappedBytes, long nativeBytes, long parameters) {}

    public static Footprint footprint(Path checkpoint, ModelLayout layout, Quantization quantization) throws IOException {
        try (ShardedSafetensors tensors = ShardedSafetensors.open(checkpoint)) {
            Map<String, long[]> found = new LinkedHashMap<>();
            for (String name : tensors.tensorNames()) {
                found.put(name, tensors.info(name).shape());
            }
            long heap = 0;
            long mapped = 0;
            long offHeap = 0;
            long parameters = 0;
            for (var entry : layout.validate(found, tensors.source().toString()).entrySet()) {
                WeightSpec spec = layout.weight(entry.getKey());
                DType dtype = tensors.info(entry.getValue()).dtype();
                parameters += spec.numel();
                switch (holding(layout, spec, dtype, quantization)) {
                    case ARRAY -> heap += 4 * spec.numel();
                    case MAPPED -> mapped += spec.numel() * dtype.byteSize();
                    case QUANTIZED -> offHeap += quantization.bytes(spec.shape()[0], spec.shape()[1], dtype.byteSize());
                }
            }
            return new Footprint(heap, mapped, offHeap, parameters);
        }
    }

    /**
     * Checks in-memory weights against {@code layout}: every tensor present with numel values, none
     * unknown.
     *
     * @throws CheckpointLayoutException listing every problem
     */
    static void requireComplete(Map<String, float[]> weights, ModelLayout layout) {
        requireComplete(weights, Map.of(), layout);
    }

    /** The same, with some tensors held as frozen matrices instead of arrays. */
    static void requireComplete(Map<String, float[]> weights, Map<String, FrozenMatrix> frozen, ModelLayout layout) {
        List<String> problems = new ArrayList<>();
        for (WeightSpec spec : layout.weights()) {
            float[] values = weights.get(spec.name());
            FrozenMatrix held = frozen.get(spec.name());
            long length = values != null ? values.length : held != null ? (long) held.rows() * held.cols() : -1;
            if (length < 0) {
                problems.add("missing tensor " + spec);
            } else if (length != spec.numel()) {
                problems.add("tensor " + spec + " has " + length + " values, expected " + spec.numel());
            }
        }
        for (String name : frozen.keySet()) {
            if (layout.weight(name) == null) {
                problems.add("unexpected tensor " + name);
            }
        }
        for (String name : weights.keySet()) {
            if (layout.weight(name) == null) {
                problems.add("unexpected tensor " + name);
            }
        }
        if (!problems.isEmpty()) {
            throw new CheckpointLayoutException("weights do not match the " + layout.config().modelType() + " layout ("
                    + problems.size() + " problem" + (problems.size() == 1 ? "" : "s") + "):\n  "
                    + String.join("\n  ", problems));
        }
    }
}
