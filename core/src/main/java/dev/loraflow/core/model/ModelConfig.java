package dev.loraflow.core.model;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * The architecture hyper-parameters of a base model, as Hugging Face stores them in {@code config.json}.
 * Each record keeps only what loraflow needs to build and load the model; {@link #toJson()} writes a
 * config Transformers loads into the same model.
 */
public sealed interface ModelConfig permits Gpt2Config, DecoderConfig {

    /** Every model_type loraflow reads, quoted and comma-separated, for messages. */
    String SUPPORTED_MODEL_TYPES = Stream.concat(Stream.of(Gpt2Config.MODEL_TYPE),
                    Arrays.stream(DecoderConfig.Family.values()).map(DecoderConfig.Family::modelType))
            .map(type -> "\"" + type + "\"").collect(Collectors.joining(", "));

    /** HF's {@code model_type}. */
    String modelType();

    int vocabSize();

    /** Width of the residual stream. */
    int hiddenSize();

    int numLayers();

    int numHeads();

    int headDim();

    /** Longest sequence the position embedding or RoPE table is built for. */
    int maxPositions();

    /** Whether the output head shares the token embedding matrix. */
    boolean tieWordEmbeddings();

    /** The config.json text, keys sorted and indented as Transformers' {@code save_pretrained} writes them. */
    String toJson();

    /** Reads a Hugging Face {@code config.json}. */
    static ModelConfig read(Path configJson) throws IOException {
        return parse(Files.readString(configJson, StandardCharsets.UTF_8), configJson.toString());
    }

    /**
     * Parses config.json text; {@code source} names it in error messages.
     *
     * @throws ModelConfigException if the JSON is malformed, a key is missing or invalid, or the model
     *     uses a feature loraflow does not implement
     */
    static ModelConfig parse(String json, String source) {
        var fields = ConfigFields.parse(json, source);
        String modelType = fields.requiredString("model_type");
        if (modelType.equals(Gpt2Config.MODEL_TYPE)) {
            return Gpt2Config.fromFields(fields);
        }
        DecoderConfig.Family family = DecoderConfig.Family.ofModelType(modelType);
        if (family == null) {
            throw fields.error("model_type \"" + modelType + "\" is not supported; supported: " + SUPPORTED_MODEL_TYPES);
        }
        return DecoderConfig.fromFields(family, fields);
    }
}
