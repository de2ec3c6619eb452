package dev.loraflow.core.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Locale;

/**
 * A config.json {@code rope_scaling}: how the rotary frequencies θ^(−2i/D) are changed, as Transformers'
 * {@code modeling_rope_utils} computes them (each with an attention factor of 1, so cos and sin are
 * not rescaled).
 *
 * <ul>
 *   <li>{@code linear}: every frequency divided by {@code factor}.
 *   <li>{@code dynamic} (NTK): θ becomes θ·(factor·T/max_position_embeddings − (factor − 1))^(D/(D−2))
 *       for a sequence of T > max_position_embeddings positions; for T within max_position_embeddings,
 *       the only sequences loraflow runs, that is θ itself, so the frequencies are plain RoPE's.
 *   <li>{@code llama3}: {@code _compute_llama3_parameters}: frequencies whose wavelength 2π/f is above
 *       original_max_position_embeddings/low_freq_factor are divided by factor, those below
 *       original/high_freq_factor kept, and those between interpolated with
 *       s = (original/wavelength − low)/(high − low): (1 − s)·f/factor + s·f.
 * </ul>
 *
 * @param type                 {@code rope_type} (or the legacy {@code type})
 * @param factor               {@code factor}, at least 1
 * @param lowFreqFactor        llama3's {@code low_freq_factor}, else 0
 * @param highFreqFactor       llama3's {@code high_freq_factor}, else 0
 * @param originalMaxPositions llama3's {@code original_max_position_embeddings}, else 0
 */
public record RopeScaling(Type type, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositions) {

    /** The rope types loraflow computes; others ({@code yarn}, {@code longrope}, {@code su}) are refused by name. */
    public enum Type {
        LINEAR, DYNAMIC, LLAMA3;

        public String json() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    public RopeScaling {
        if (type == null) {
            throw new ModelConfigException("rope_scaling needs a rope_type");
        }
        if (!(factor >= 1) || !Double.isFinite(factor)) {
            throw new ModelConfigException("rope_scaling factor must be a number ≥ 1, found " + factor);
        }
        if (type == Type.LLAMA3) {
            if (!(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor) || !Double.isFinite(highFreqFactor)) {
                throw new ModelConfigException("llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor, found "
                        + lowFreqFactor + " and " + highFreqFactor);
            }
            ConfigFields.requirePositive("original_max_position_embeddings", originalMaxPositions);
        }
    }

    public static RopeScaling linear(double factor) {
        return new RopeScaling(Type.LINEAR, factor, 0, 0, 0);
    }

    public static RopeScaling dynamic(double factor) {
        return new RopeScaling(Type.DYNAMIC, factor, 0, 0, 0);
    }

    public static RopeScaling llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {
        return new RopeScaling(Type.LLAMA3, factor, lowFreqFactor, highFreqFactor, originalMaxPositions);
    }

    /** Plain RoPE's inverse frequencies θ^(−2i/D), i ∈ [0, D/2), in double. */
    public static double[] plainInverseFrequencies(int headDim, double theta) {
        double[] frequencies = new double[headDim / 2];
        for (int i = 0; i < frequencies.length; i++) {
            frequencies[i] = 1 / Math.pow(theta, 2.0 * i / headDim);
        }
        return frequencies;
    }

    /** The scaled inverse frequencies of a head dimension D and base θ, for sequences within the model's context. */
    public double[] inverseFrequencies(int headDim, double theta) {
        double[] frequencies = plainInverseFrequencies(headDim, theta);
        switch (type) {
            case LINEAR -> {
                for (int i = 0; i < frequencies.length; i++) {
                    frequencies[i] /= factor;
                }
            }
            case DYNAMIC -> { }
            case LLAMA3 -> {
                double lowFrequencyWavelength = originalMaxPositions / lowFreqFactor;
                double highFrequencyWavelength = originalMaxPositions / highFreqFactor;
                for (int i = 0; i < frequencies.length; i++) {
                    double wavelength = 2 * Math.PI / frequencies[i];
                    if (wavelength > lowFrequencyWavelength) {
                        frequencies[i] /= factor;
                    } else if (wavelength >= highFrequencyWavelength) {
                        double smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                        frequencies[i] = (1 - smooth) * frequencies[i] / factor + smooth * frequencies[i];
                    }
                }
            }
        }
        return frequencies;
    }

    /** Reads a {@code rope_scaling} object; null or {@code rope_type} "default" is plain RoPE (null). */
    static RopeScaling parse(JsonNode node, ConfigFields fields) {
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.isObject()) {
            throw fields.error("'rope_scaling' must be an object or null, found " + node);
        }
        JsonNode typeNode = node.hasNonNull("rope_type") ? node.get("rope_type") : node.get("type");
        if (typeNode == null || !typeNode.isTextual()) {
            throw fields.error("rope_scaling " + node + " names no rope_type");
        }
        String type = typeNode.textValue();
        if (type.equals("default")) {
            return null;
        }
        if (!type.equals("linear") && !type.equals("dynamic") && !type.equals("llama3")) {
            throw fields.error("rope_scaling rope_type \"" + type
                    + "\" is not supported; supported: \"linear\", \"dynamic\", \"llama3\" (or null for plain RoPE)");
        }
        double factor = number(node, "factor", fields);
        boolean llama3 = type.equals("llama3");
        double low = llama3 ? number(node, "low_freq_factor", fields) : 0;
        double high = llama3 ? number(node, "high_freq_factor", fields) : 0;
        int original = llama3 ? integer(node, "original_max_position_embeddings", fields) : 0;
        try {
            return new RopeScaling(Type.valueOf(type.toUpperCase(Locale.ROOT)), factor, low, high, original);
        } catch (ModelConfigException e) {
            throw fields.error(e.getMessage());
        }
    }

    private static double number(JsonNode node, String key, ConfigFields fields) {
        JsonNode value = node.get(key);
        if (value == null || !value.isNumber()) {
            throw fields.error("rope_scaling needs a number '" + key + "', found " + value);
        }
        return value.doubleValue();
    }

    private static int integer(JsonNode node, String key, ConfigFields fields) {
        JsonNode value = node.get(key);
        if (value == null || !value.isIntegralNumber() || !value.canConvertToInt()) {
            throw fields.error("rope_scaling needs an integer '" + key + "', found " + value);
        }
        return value.intValue();
    }

    /** The object config.json holds, with both {@code rope_type} and the legacy {@code type}, as Transformers saves it. */
    ObjectNode toJson() {
        ObjectNode node = JsonNodeFactory.instance.objectNode();
        node.put("factor", factor);
        if (type == Type.LLAMA3) {
            node.put("high_freq_factor", highFreqFactor);
            node.put("low_freq_factor", lowFreqFactor);
            node.put("original_max_position_embeddings", originalMaxPositions);
        }
        node.put("rope_type", type.json());
        node.put("type", type.json());
        return node;
    }
}
