package dev.loraflow.core.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.PythonJson;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * A freshly initialised base model, written as a Hugging Face model directory, so tests and demos have
 * a model without a download. Weights follow Transformers' {@code _init_weights}: linear and embedding
 * weights ~ N(0, 0.02²) ({@code initializer_range}), GPT-2's residual projections ({@code c_proj}) ~
 * N(0, (0.02/√(2·n_layer))²), biases 0, norm weights 1 (0 where Gemma stores them as offsets from 1).
 */
public final class RandomModel {

    /** Transformers' default {@code initializer_range} for GPT-2 and Llama. */
    public static final double INITIALIZER_RANGE = 0.02;
    public static final String CONFIG_FILE = "config.json";

    /** Elements drawn by one task when a tensor is drawn on several cores. */
    private static final int PARALLEL_RUN = 1 << 16;

    private RandomModel() {}

    /**
     * Every tensor of the model under its canonical name, in layout order; tensor i draws from its own
     * stream {@code Rng(Rng.hash(seed, i))}, so the weights are a function of (config, seed) alone.
     */
    public static Map<String, float[]> initialWeights(ModelConfig config, long seed) {
        List<WeightSpec> specs = ModelLayout.of(config).weights();
        Map<String, float[]> weights = new LinkedHashMap<>();
        for (int index = 0; index < specs.size(); index++) {
            weights.put(specs.get(index).name(), initialWeight(config, seed, index));
        }
        return Collections.unmodifiableMap(weights);
    }

    /** Tensor {@code index} of the layout's weights, drawn as {@link #initialWeights} draws it. */
    private static float[] initialWeight(ModelConfig config, long seed, int index) {
        float[] values = new float[Math.toIntExact(ModelLayout.of(config).weights().get(index).numel())];
        initialValues(config, seed, index, 0, values, values.length);
        return values;
    }

    /**
     * Elements {@code [start, start + count)} of tensor {@code index}, flattened, into {@code into[0, count)}: element
     * j of a random tensor is the j-th normal draw of the tensor's stream, Box–Muller on draws 2j and 2j + 1, so a
     * run of {@value #PARALLEL_RUN} elements starts its own {@link Rng} there and runs are drawn in parallel.
     */
    private static void initialValues(ModelConfig config, long seed, int index, long start, float[] into, int count) {
        WeightSpec spec = ModelLayout.of(config).weights().get(index);
        switch (spec.role()) {
            // Gemma's norms multiply by (1 + weight), so its identity weight is 0.
            case NORM_WEIGHT -> Arrays.fill(into, 0, count, normWeightOffsetByOne(config) ? 0f : 1f);
            case NORM_BIAS, LINEAR_BIAS -> Arrays.fill(into, 0, count, 0f);
            case TOKEN_EMBEDDING, POSITION_EMBEDDING, LINEAR_WEIGHT, OUTPUT_HEAD -> {
                // GPT-2 scales the projections into the residual stream down so its variance does not grow with depth.
                boolean residual = config instanceof Gpt2Config && spec.name().endsWith(".c_proj.weight");
                double std = residual ? INITIALIZER_RANGE / Math.sqrt(2.0 * config.numLayers()) : INITIALIZER_RANGE;
                long stream = Rng.hash(seed, index);
                IntStream.range(0, (count + PARALLEL_RUN - 1) / PARALLEL_RUN).parallel().forEach(run -> {
                    int from = run * PARALLEL_RUN;
                    int to = Math.min(count, from + PARALLEL_RUN);
                    Rng rng = new Rng(stream);
                    rng.skip(2 * (start + from));
                    for (int i = from; i < to; i++) {
                        into[i] = (float) (std * rng.nextGaussian());
                    }
                });
            }
        }
    }

    private static boolean normWeightOffsetByOne(ModelConfig config) {
        return config instanceof DecoderConfig decoder && decoder.family().normWeightOffsetByOne();
    }

    /**
     * Writes {@value #CONFIG_FILE}, {@code model.safetensors} (F32, tensors named as the *ForCausalLM
     * model's {@code save_pretrained} names them, a tied output head left out) and, when
     * {@link ByteLevelTokenizerJson#fits} the vocabulary, the byte-level tokenizer of
     * {@link ByteLevelTokenizerJson} with merges filling every id, whose end-of-text id 256 the config
     * then names as {@code bos_token_id} and {@code eos_token_id}. No tokenizer is written for a
     * vocabulary it cannot fill, so that every id a model has can be decoded by its tokenizer.
     *
     * @throws FileAlreadyExistsException if {@code outDir} exists and is not empty: a model directory is
     *     never overwritten
     */
    public static void write(ModelConfig config, long seed, Path outDir) throws IOException {
        write(config, seed, DType.F32, outDir);
    }

    /**
     * {@link #write(ModelConfig, long, Path)} with the tensors stored in {@code dtype} (F32, BF16 or F16,
     * each rounded once from the float32 initialisation). The tensors are drawn a few MiB at a time as the file
     * is written, on every core, so memory holds one such run whatever the model's size; the bytes are those of
     * {@link #initialWeights} stored in {@code dtype}.
     */
    public static void write(ModelConfig config, long seed, DType dtype, Path outDir) throws IOException {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("a model's weights are stored F32, BF16 or F16, not " + dtype);
        }
        Files.createDirectories(outDir);
        try (Stream<Path> existing = Files.list(outDir)) {
            if (existing.findAny().isPresent()) {
                throw new FileAlreadyExistsException(outDir.toString(), null,
                        "not empty; a new model is only written into an empty or new directory");
            }
        }
        ModelLayout layout = ModelLayout.of(config);
        var writer = new SafetensorsWriter().putMetadata("format", "pt");
        List<WeightSpec> specs = layout.weights();
        for (int index = 0; index < specs.size(); index++) {
            String name = specs.get(index).name();
            int dot = name.lastIndexOf('.');
            // A tensor's key in the *ForCausalLM state dict is its module's path there plus the parameter name.
            String savedName = layout.peftModulePath(name.substring(0, dot)) + name.substring(dot);
            int tensor = index;
            writer.addRuns(savedName, dtype, (start, into, count) -> initialValues(config, seed, tensor, start, into, count),
                    specs.get(index).shape());
        }
        writer.write(outDir.resolve(SafetensorsWriter.SINGLE_FILE));

        ObjectNode configJson = (ObjectNode) new ObjectMapper().readTree(config.toJson());
        if (ByteLevelTokenizerJson.fits(config.vocabSize())) {
            ByteLevelTokenizerJson.write(outDir, config.maxPositions(), config.vocabSize());
            configJson.put("bos_token_id", ByteLevelTokenizerJson.END_OF_TEXT_ID);
            configJson.put("eos_token_id", ByteLevelTokenizerJson.END_OF_TEXT_ID);
        }
        AtomicFiles.write(outDir.resolve(CONFIG_FILE),
                (PythonJson.dumps(configJson) + "\n").getBytes(StandardCharsets.UTF_8));
    }
}
