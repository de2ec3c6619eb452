package dev.loraflow.serving.kserve;

import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.inference.Completion;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.ServedModel;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.GenerationParameters;
import dev.loraflow.serving.service.Generations;
import dev.loraflow.serving.service.Serving;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * KServe's Open Inference Protocol v2 for the served causal LM, whichever transport carries it: REST
 * ({@link KServeResource}) and gRPC ({@link KServeGrpcService}) only translate their messages to and from
 * these records, so the two cannot answer the same request differently.
 *
 * <p>A model (any model served by name, or an adapter on one) takes one input, {@code input_ids} (INT64 or INT32,
 * shape [n] or [1, n]) or, with a tokenizer, {@code text_input} (BYTES, shape [1]), and gives
 * {@code output_ids} (INT64 [1, m]) and, with a tokenizer, {@code text_output} (BYTES [1]); a request
 * that names outputs gets those only. The request's parameters take max_tokens (default 16),
 * temperature (default 1), top_k, top_p, seed and stop, as in the OpenAI API; the response's
 * parameters hold finish_reason, prompt_tokens and completion_tokens. Refusals are {@link ApiError}s:
 * 400 for bad tensors or parameters, 404 for an unknown model or version, 503 before a model is loaded,
 * 429 when the queue is full.
 */
@ApplicationScoped
public class KServeInference {

    private static final Logger LOG = Logger.getLogger(KServeInference.class);
    public static final String INPUT_IDS = "input_ids";
    public static final String TEXT_INPUT = "text_input";
    public static final String OUTPUT_IDS = "output_ids";
    public static final String TEXT_OUTPUT = "text_output";
    static final String PLATFORM = "onnxruntime_onnx";
    private static final int DEFAULT_MAX_TOKENS = 16;

    @Inject
    Serving serving;
    @Inject
    Generations generations;

    /** A tensor's values as the request carried them. */
    public sealed interface Values {
        int size();

        record Integers(long[] values) implements Values {
            @Override
            public int size() {
                return values.length;
            }
        }

        record Strings(List<String> values) implements Values {
            @Override
            public int size() {
                return values.size();
            }
        }

        /** Values of a type no input takes (floats, booleans, a mix): counted against the shape, never read. */
        record Other(int size) implements Values {}
    }

    public record Tensor(String name, String datatype, long[] shape, Values values) {}

    /**
     * An inference request less the model it names; {@code parameters} null for the defaults, {@code outputs} empty
     * for every output.
     */
    public record Request(String id, List<Tensor> inputs, GenerationParameters parameters, List<String> outputs) {}

    public record Result(String modelName, String modelVersion, String id, String finishReason, int promptTokens,
                         int completionTokens, List<Tensor> outputs) {}

    public record TensorMetadata(String name, String datatype, long[] shape) {}

    public record ModelMetadata(String name, List<String> versions, String platform, List<TensorMetadata> inputs,
                                List<TensorMetadata> outputs) {}

    public record ServerMetadata(String name, String version, List<String> extensions) {}

    public ServerMetadata serverMetadata() {
        return new ServerMetadata("loraflow-serving", OnnxExporter.version(), List.of());
    }

    /** Whether a verified model is served. */
    public boolean ready() {
        return serving.ready();
    }

    /** The engine thread runs: when it died, no request is served until the process restarts. */
    public boolean live() {
        return serving.live();
    }

    /**
     * @param version null or empty for the version served
     * @throws ApiError 404 for an unknown model or version, 503 before a model is loaded
     */
    public ModelMetadata modelMetadata(String name, String version) {
        ServedModel model = served(name, version);
        boolean text = model.tokenizer() != null;
        List<TensorMetadata> inputs = new ArrayList<>();
        inputs.add(new TensorMetadata(INPUT_IDS, "INT64", new long[] {1, -1}));
        List<TensorMetadata> outputs = new ArrayList<>();
        outputs.add(new TensorMetadata(OUTPUT_IDS, "INT64", new long[] {1, -1}));
        if (text) {
            inputs.add(new TensorMetadata(TEXT_INPUT, "BYTES", new long[] {1}));
            outputs.add(new TensorMetadata(TEXT_OUTPUT, "BYTES", new long[] {1}));
        }
        return new ModelMetadata(name, List.of(model.version()), PLATFORM, inputs, outputs);
    }

    /**
     * Returns when the model (and version, when given) is served and ready.
     *
     * @throws ApiError 404 for an unknown model or version, 503 before a model is loaded
     */
    public void requireReady(String name, String version) {
        served(name, version);
    }

    /**
     * Runs one inference on {@code name}. The request is read only once the model is found, so an
     * unknown model is reported as such whatever the body holds.
     *
     * @param version null or empty for the version served
     * @param api the label of the request in the metrics
     * @param end where the transport reports that its client went away, which cancels the generation
     * @throws ApiError 4xx or 503 for what is refused, 499 when the client went away, 500 when the generation fails
     */
    public Result infer(String name, String version, String api, Supplier<Request> request,
                        Generations.ExchangeEnd end) {
        Serving.Target target = null;
        boolean submitted = false;
        try {
            target = serving.acquire(name);
            if (target == null) {
                throw notFound(name);
            }
            ServedModel model = target.model();
            if (version != null && !version.isEmpty() && !version.equals(model.version())) {
                throw new ApiError(404, "model " + name + " has no version " + version + "; it serves version "
                        + model.version(), null, "version_not_found");
            }
            Request read = request.get();
            List<String> outputs = requestedOutputs(read.outputs(), model);
            int[] prompt = prompt(read.inputs(), model);
            GenerationParameters parameters = read.parameters() == null ? GenerationParameters.DEFAULTS : read.parameters();
            GenerationRequest generation = parameters.request(prompt, model, target.adapter(), DEFAULT_MAX_TOKENS);
            submitted = true;
            Completion completion = generations.complete(target, generation, api, end);
            List<Tensor> tensors = new ArrayList<>();
            if (outputs.contains(OUTPUT_IDS)) {
                long[] ids = Arrays.stream(completion.tokens()).asLongStream().toArray();
                tensors.add(new Tensor(OUTPUT_IDS, "INT64", new long[] {1, ids.length}, new Values.Integers(ids)));
            }
            if (outputs.contains(TEXT_OUTPUT) && completion.text() != null) {
                tensors.add(new Tensor(TEXT_OUTPUT, "BYTES", new long[] {1}, new Values.Strings(List.of(completion.text()))));
            }
            return new Result(name, completion.modelVersion(), read.id(),
                    completion.finishReason() == FinishReason.STOP ? "stop" : "length", completion.promptTokens(),
                    completion.tokens().length, tensors);
        } catch (ApiError e) {
            if (target != null && !submitted) {
                target.model().release();
            }
            generations.refused(api, e.status());
            throw e;
        } catch (RuntimeException e) {
            if (target != null && !submitted) {
                target.model().release();
            }
            LOG.error("inference failed", e);
            throw new ApiError(500, "inference failed: " + e.getMessage(), null, "server_error");
        }
    }

    public int retryAfterSeconds() {
        return generations.retryAfterSeconds();
    }

    private static List<String> requestedOutputs(List<String> requested, ServedModel model) {
        List<String> available = model.tokenizer() == null ? List.of(OUTPUT_IDS) : List.of(OUTPUT_IDS, TEXT_OUTPUT);
        if (requested == null || requested.isEmpty()) {
            return available;
        }
        for (String name : requested) {
            if (!available.contains(name)) {
                throw ApiError.badParameter("outputs", "unknown output '" + name + "'; the model gives " + available);
            }
        }
        return requested;
    }

    /** The prompt from the one input given: input_ids, or text_input with a tokenizer. */
    private static int[] prompt(List<Tensor> inputs, ServedModel model) {
        if (inputs == null || inputs.size() != 1) {
            throw ApiError.badParameter("inputs", "inputs must hold exactly one tensor, " + INPUT_IDS + " or " + TEXT_INPUT);
        }
        Tensor input = inputs.getFirst();
        String name = input.name();
        long[] shape = input.shape();
        long elements = 1;
        for (long dim : shape) {
            if (dim < 0 || (dim > 0 && elements > Integer.MAX_VALUE / dim)) {
                throw ApiError.badParameter("inputs", "input " + name + " has a bad shape " + Arrays.toString(shape));
            }
            elements *= dim;
        }
        if (elements != input.values().size()) {
            throw ApiError.badParameter("inputs", "input " + name + " has shape " + Arrays.toString(shape) + " ("
                    + elements + " elements) but " + input.values().size() + " values");
        }
        boolean batchOfOne = shape.length == 1 || (shape.length == 2 && shape[0] == 1);
        switch (name) {
            case INPUT_IDS -> {
                if (!input.datatype().equals("INT64") && !input.datatype().equals("INT32")) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must be INT64 or INT32, got " + input.datatype());
                }
                if (!batchOfOne) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must have shape [n] or [1, n], got "
                            + Arrays.toString(shape));
                }
                if (!(input.values() instanceof Values.Integers(long[] values))) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must hold integer token ids");
                }
                if (values.length == 0) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must hold at least one token");
                }
                int vocab = model.vocabSize();
                int[] ids = new int[values.length];
                for (int i = 0; i < ids.length; i++) {
                    if (values[i] < 0 || values[i] >= vocab) {
                        throw ApiError.badParameter("inputs", INPUT_IDS + "[" + i + "] must be a token id in [0, " + vocab
                                + "), got " + values[i]);
                    }
                    ids[i] = (int) values[i];
                }
                return ids;
            }
            case TEXT_INPUT -> {
                if (!input.datatype().equals("BYTES") || !(input.values() instanceof Values.Strings(List<String> texts))
                        || texts.size() != 1) {
                    throw ApiError.badParameter("inputs", TEXT_INPUT + " must be BYTES holding one string");
                }
                if (model.tokenizer() == null) {
                    throw ApiError.badParameter("inputs", "this model has no tokenizer: give " + INPUT_IDS);
                }
                int[] ids = model.tokenizer().encode(texts.getFirst());
                if (ids.length == 0) {
                    throw ApiError.badParameter("inputs", TEXT_INPUT + " is empty");
                }
                return ids;
            }
            default -> throw ApiError.badParameter("inputs", "unknown input '" + name + "'; the model takes "
                    + INPUT_IDS + " or " + TEXT_INPUT);
        }
    }

    /** The model serving {@code name} (and {@code version} when given), loaded again first when it was evicted. */
    private ServedModel served(String name, String version) {
        Serving.Target target = serving.acquire(name);
        if (target == null) {
            throw notFound(name);
        }
        // Only read from: the lease needs not outlive the lookup.
        ServedModel model = target.model();
        model.release();
        if (version != null && !version.isEmpty() && !version.equals(model.version())) {
            throw new ApiError(404, "model " + name + " has no version " + version, null, "version_not_found");
        }
        return model;
    }

    private ApiError notFound(String name) {
        return serving.ready() ? new ApiError(404, "no model named '" + name + "' is served", null, "model_not_found")
                : new ApiError(503, "no model is loaded yet", null, "model_not_loaded");
    }
}
