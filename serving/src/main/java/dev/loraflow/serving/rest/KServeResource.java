package dev.loraflow.serving.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.export.onnx.OnnxExporter;
import dev.loraflow.inference.Completion;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.ServedModel;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.List;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * KServe's Open Inference Protocol v2 over REST. A model (the base model or an adapter, by name) takes
 * {@code input_ids} (INT64 or INT32, shape [n] or [1, n]) or {@code text_input} (BYTES, shape [1]) and
 * returns {@code output_ids} (INT64 [1, m]) and, with a tokenizer, {@code text_output} (BYTES [1]); the
 * request's {@code parameters} take max_tokens (default 16), temperature (default 1), top_k, top_p, seed
 * and stop, as in the OpenAI API. Errors are {@code {"error": "..."}}. Health endpoints answer 200 when
 * true and 503 when not.
 */
@Path("/v2")
@Produces(MediaType.APPLICATION_JSON)
public class KServeResource {

    private static final Logger LOG = Logger.getLogger(KServeResource.class);
    private static final String API = "kserve_v2";
    static final String INPUT_IDS = "input_ids";
    static final String TEXT_INPUT = "text_input";
    static final String OUTPUT_IDS = "output_ids";
    static final String TEXT_OUTPUT = "text_output";

    @Inject
    Serving serving;
    @Inject
    Generations generations;

    @ConfigProperty(name = "loraflow.serving.max-body-bytes", defaultValue = "1048576")
    long maxBodyBytes;

    @GET
    public Response server() {
        ObjectNode root = Requests.JSON.createObjectNode().put("name", "loraflow-serving")
                .put("version", OnnxExporter.version());
        root.putArray("extensions");
        return Response.ok(root).build();
    }

    @GET
    @Path("/health/live")
    public Response live() {
        return Response.ok(Requests.JSON.createObjectNode().put("live", true)).build();
    }

    @GET
    @Path("/health/ready")
    public Response ready() {
        boolean ready = serving.ready();
        return Response.status(ready ? 200 : 503).entity(Requests.JSON.createObjectNode().put("ready", ready)).build();
    }

    @GET
    @Path("/models/{name}")
    public Response metadata(@PathParam("name") String name) {
        ServedModel model = served(name, null);
        ObjectNode root = Requests.JSON.createObjectNode().put("name", name);
        root.putArray("versions").add(model.version());
        root.put("platform", "onnxruntime_onnx");
        ArrayNode inputs = root.putArray("inputs");
        tensor(inputs, INPUT_IDS, "INT64", -1);
        if (model.tokenizer() != null) {
            tensor(inputs, TEXT_INPUT, "BYTES", 1);
        }
        ArrayNode outputs = root.putArray("outputs");
        tensor(outputs, OUTPUT_IDS, "INT64", -1);
        if (model.tokenizer() != null) {
            tensor(outputs, TEXT_OUTPUT, "BYTES", 1);
        }
        return Response.ok(root).build();
    }

    @GET
    @Path("/models/{name}/versions/{version}")
    public Response metadata(@PathParam("name") String name, @PathParam("version") String version) {
        served(name, version);
        return metadata(name);
    }

    @GET
    @Path("/models/{name}/ready")
    public Response modelReady(@PathParam("name") String name) {
        served(name, null);
        return Response.ok(Requests.JSON.createObjectNode().put("name", name).put("ready", true)).build();
    }

    @GET
    @Path("/models/{name}/versions/{version}/ready")
    public Response modelReady(@PathParam("name") String name, @PathParam("version") String version) {
        served(name, version);
        return modelReady(name);
    }

    @POST
    @Path("/models/{name}/infer")
    @Consumes(MediaType.WILDCARD)
    public Response infer(@PathParam("name") String name, byte[] body) {
        return infer(name, null, body);
    }

    @POST
    @Path("/models/{name}/versions/{version}/infer")
    @Consumes(MediaType.WILDCARD)
    public Response infer(@PathParam("name") String name, @PathParam("version") String version, byte[] body) {
        Serving.Target target = null;
        boolean submitted = false;
        try {
            JsonNode root = Requests.jsonObject(body, maxBodyBytes);
            target = serving.acquire(name);
            if (target == null) {
                throw notFound(name);
            }
            ServedModel model = target.model();
            if (version != null && !version.equals(model.version())) {
                throw new ApiError(404, "model " + name + " has no version " + version + "; it serves version "
                        + model.version(), null, "version_not_found");
            }
            int[] prompt = promptOf(root, model);
            JsonNode parameters = root.path("parameters");
            if (!parameters.isMissingNode() && !parameters.isObject()) {
                throw ApiError.badParameter("parameters", "parameters must be an object");
            }
            parameters = parameters.isObject() ? parameters : Requests.JSON.createObjectNode();
            SamplingSettings sampling = Requests.sampling(parameters, model, prompt.length, 16);
            List<String> stops = Requests.stopSequences(parameters, model);
            submitted = true;
            Completion completion = generations.complete(target,
                    new GenerationRequest(prompt, sampling, stops, target.adapter()), API);
            ObjectNode response = Requests.JSON.createObjectNode().put("model_name", name)
                    .put("model_version", completion.modelVersion());
            JsonNode id = root.get("id");
            if (id != null && id.isTextual()) {
                response.put("id", id.textValue());
            }
            response.putObject("parameters")
                    .put("finish_reason", completion.finishReason() == dev.loraflow.core.generate.GenerationResult.FinishReason.STOP ? "stop" : "length")
                    .put("prompt_tokens", completion.promptTokens()).put("completion_tokens", completion.tokens().length);
            ArrayNode outputs = response.putArray("outputs");
            ObjectNode ids = outputs.addObject().put("name", OUTPUT_IDS).put("datatype", "INT64");
            ids.putArray("shape").add(1).add(completion.tokens().length);
            ArrayNode data = ids.putArray("data");
            for (int token : completion.tokens()) {
                data.add(token);
            }
            if (completion.text() != null) {
                ObjectNode text = outputs.addObject().put("name", TEXT_OUTPUT).put("datatype", "BYTES");
                text.putArray("shape").add(1);
                text.putArray("data").add(completion.text());
            }
            return Response.ok(response).build();
        } catch (ApiError e) {
            if (target != null && !submitted) {
                target.model().release();
            }
            generations.refused(API, e.status());
            return error(e, generations.retryAfterSeconds());
        } catch (RuntimeException e) {
            if (target != null && !submitted) {
                target.model().release();
            }
            LOG.error("inference failed", e);
            return error(new ApiError(500, "inference failed: " + e.getMessage(), null, "server_error"), 0);
        }
    }

    /** The prompt from the one input given: input_ids, or text_input with a tokenizer. */
    private static int[] promptOf(JsonNode root, ServedModel model) {
        JsonNode inputs = root.get("inputs");
        if (inputs == null || !inputs.isArray() || inputs.size() != 1) {
            throw ApiError.badParameter("inputs", "inputs must hold exactly one tensor, " + INPUT_IDS + " or " + TEXT_INPUT);
        }
        JsonNode input = inputs.get(0);
        String name = input.path("name").asText("");
        String datatype = input.path("datatype").asText("");
        JsonNode shape = input.get("shape");
        JsonNode data = input.get("data");
        if (shape == null || !shape.isArray() || data == null || !data.isArray()) {
            throw ApiError.badParameter("inputs", "input " + name + " needs a shape and a data array");
        }
        long elements = 1;
        for (JsonNode dim : shape) {
            if (!dim.isIntegralNumber() || dim.longValue() < 0) {
                throw ApiError.badParameter("inputs", "input " + name + " has a bad shape " + shape);
            }
            elements *= dim.longValue();
        }
        if (elements != data.size()) {
            throw ApiError.badParameter("inputs", "input " + name + " has shape " + shape + " (" + elements
                    + " elements) but " + data.size() + " values");
        }
        boolean batchOfOne = shape.size() == 1 || (shape.size() == 2 && shape.get(0).longValue() == 1);
        switch (name) {
            case INPUT_IDS -> {
                if (!datatype.equals("INT64") && !datatype.equals("INT32")) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must be INT64 or INT32, got " + datatype);
                }
                if (!batchOfOne) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must have shape [n] or [1, n], got " + shape);
                }
                if (data.isEmpty()) {
                    throw ApiError.badParameter("inputs", INPUT_IDS + " must hold at least one token");
                }
                return Requests.tokenIds(data, INPUT_IDS, model.vocabSize());
            }
            case TEXT_INPUT -> {
                if (!datatype.equals("BYTES") || data.size() != 1 || !data.get(0).isTextual()) {
                    throw ApiError.badParameter("inputs", TEXT_INPUT + " must be BYTES holding one string");
                }
                if (model.tokenizer() == null) {
                    throw ApiError.badParameter("inputs", "this model has no tokenizer: give " + INPUT_IDS);
                }
                int[] ids = model.tokenizer().encode(data.get(0).textValue());
                if (ids.length == 0) {
                    throw ApiError.badParameter("inputs", TEXT_INPUT + " is empty");
                }
                return ids;
            }
            default -> throw ApiError.badParameter("inputs", "unknown input '" + name + "'; the model takes "
                    + INPUT_IDS + " or " + TEXT_INPUT);
        }
    }

    private static void tensor(ArrayNode tensors, String name, String datatype, int length) {
        ObjectNode tensor = tensors.addObject().put("name", name).put("datatype", datatype);
        tensor.putArray("shape").add(1).add(length);
    }

    /** The model serving {@code name} (and {@code version} when given). */
    private ServedModel served(String name, String version) {
        ServedModel model = serving.current();
        boolean named = model != null && (name.equals(model.name()) || model.hasAdapter(name));
        if (!named) {
            throw notFound(name);
        }
        if (version != null && !version.equals(model.version())) {
            throw new ApiError(404, "model " + name + " has no version " + version, null, "version_not_found");
        }
        return model;
    }

    private ApiError notFound(String name) {
        return serving.ready() ? new ApiError(404, "no model named '" + name + "' is served", null, "model_not_found")
                : new ApiError(503, "no model is loaded yet", null, "model_not_loaded");
    }

    static Response error(ApiError e, int retryAfterSeconds) {
        Response.ResponseBuilder response = Response.status(e.status())
                .entity(Requests.JSON.createObjectNode().put("error", e.getMessage())).type(MediaType.APPLICATION_JSON);
        if (e.status() == 429) {
            response.header("Retry-After", Integer.toString(retryAfterSeconds));
        }
        return response.build();
    }
}
