package dev.loraflow.core.model;

import dev.loraflow.core.safetensors.ShardedSafetensors;
import dev.loraflow.core.safetensors.TensorInfo;
import java.io.IOException;
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
     * Checks in-memory weights against {@code layout}: every tensor present with numel values, none
     * unknown.
     *
     * @throws CheckpointLayoutException listing every problem
     */
    static void requireComplete(Map<String, float[]> weights, ModelLayout layout) {
        List<String> problems = new ArrayList<>();
        for (WeightSpec spec : layout.weights()) {
            float[] values = weights.get(spec.name());
            if (values == null) {
                problems.add("missing tensor " + spec);
            } else if (values.length != spec.numel()) {
                problems.add("tensor " + spec + " has " + values.length + " values, expected " + spec.numel());
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
