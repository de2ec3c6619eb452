package dev.loraflow.serving.kserve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.Generations;
import dev.loraflow.serving.service.Requests;
import dev.loraflow.serving.service.ServingConfig;
import io.vertx.ext.web.RoutingContext;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.ArrayList;
import java.util.List;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/**
 * KServe's Open Inference Protocol v2 over REST: JSON in and out of {@link KServeInference}, which
 * documents the tensors and parameters. Errors are {@code {"error": "..."}} (this resource's mapper). The infer
 * body stays bytes until the model is found, so that an unknown model is reported as such whatever the body. Health endpoints answer 200
 * when true and 503 when not.
 */
@Path("/v2")
@Produces(MediaType.APPLICATION_JSON)
public class KServeResource {

    private static final String API = "kserve_v2";

    @Inject
    KServeInference kserve;

    @Inject
    ServingConfig config;

    @GET
    @Operation(summary = "KServe v2 server metadata")
    public Response server() {
        KServeInference.ServerMetadata metadata = kserve.serverMetadata();
        ObjectNode root = Requests.JSON.createObjectNode().put("name", metadata.name()).put("version", metadata.version());
        ArrayNode extensions = root.putArray("extensions");
        metadata.extensions().forEach(extensions::add);
        return Response.ok(root).build();
    }

    @GET
    @Path("/health/live")
    @Operation(summary = "KServe v2 liveness: 200 while the engine thread runs, else 503")
    public Response live() {
        boolean live = kserve.live();
        return Response.status(live ? 200 : 503).entity(Requests.JSON.createObjectNode().put("live", live)).build();
    }

    @GET
    @Path("/health/ready")
    @Operation(summary = "KServe v2 readiness: 200 once a verified model is served, else 503")
    public Response ready() {
        boolean ready = kserve.ready();
        return Response.status(ready ? 200 : 503).entity(Requests.JSON.createObjectNode().put("ready", ready)).build();
    }

    @GET
    @Path("/models/{name}")
    @Operation(summary = "KServe v2 model metadata: versions, inputs and outputs")
    public Response metadata(@PathParam("name") String name) {
        return metadata(name, null);
    }

    @GET
    @Path("/models/{name}/versions/{version}")
    @Operation(summary = "KServe v2 model metadata of one version")
    public Response metadata(@PathParam("name") String name, @PathParam("version") String version) {
        KServeInference.ModelMetadata metadata = kserve.modelMetadata(name, version);
        ObjectNode root = Requests.JSON.createObjectNode().put("name", metadata.name());
        ArrayNode versions = root.putArray("versions");
        metadata.versions().forEach(versions::add);
        root.put("platform", metadata.platform());
        tensors(root.putArray("inputs"), metadata.inputs());
        tensors(root.putArray("outputs"), metadata.outputs());
        return Response.ok(root).build();
    }

    @GET
    @Path("/models/{name}/ready")
    @Operation(summary = "KServe v2 model readiness")
    public Response modelReady(@PathParam("name") String name) {
        return modelReady(name, null);
    }

    @GET
    @Path("/models/{name}/versions/{version}/ready")
    @Operation(summary = "KServe v2 readiness of one model version")
    public Response modelReady(@PathParam("name") String name, @PathParam("version") String version) {
        kserve.requireReady(name, version);
        return Response.ok(Requests.JSON.createObjectNode().put("name", name).put("ready", true)).build();
    }

    @POST
    @Path("/models/{name}/infer")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "KServe v2 inference: input_ids or text_input in, output_ids and text_output out")
    public Response infer(@PathParam("name") String name, byte[] body, @Context RoutingContext routing) {
        return infer(name, null, body, routing);
    }

    @POST
    @Path("/models/{name}/versions/{version}/infer")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "KServe v2 inference on one model version")
    public Response infer(@PathParam("name") String name, @PathParam("version") String version, byte[] body,
                          @Context RoutingContext routing) {
        KServeInference.Result result = kserve.infer(name, version, API, () -> request(body),
                Generations.ExchangeEnd.of(routing));
        ObjectNode response = Requests.JSON.createObjectNode().put("model_name", result.modelName())
                .put("model_version", result.modelVersion());
        if (result.id() != null) {
            response.put("id", result.id());
        }
        response.putObject("parameters").put("finish_reason", result.finishReason())
                .put("prompt_tokens", result.promptTokens()).put("completion_tokens", result.completionTokens());
        ArrayNode outputs = response.putArray("outputs");
        for (KServeInference.Tensor tensor : result.outputs()) {
            ObjectNode output = outputs.addObject().put("name", tensor.name()).put("datatype", tensor.datatype());
            ArrayNode shape = output.putArray("shape");
            for (long dim : tensor.shape()) {
                shape.add(dim);
            }
            ArrayNode data = output.putArray("data");
            switch (tensor.values()) {
                case KServeInference.Values.Integers(long[] values) -> {
                    for (long value : values) {
                        data.add(value);
                    }
                }
                case KServeInference.Values.Strings(List<String> values) -> values.forEach(data::add);
                case KServeInference.Values.Other _ -> throw new IllegalStateException("no output holds other values");
            }
        }
        return Response.ok(response).build();
    }

    /** The JSON body as the protocol's request; data arrays become integers, strings, or other values by their elements. */
    private KServeInference.Request request(byte[] body) {
        JsonNode root = Requests.jsonObject(body, config.maxBodyBytes());
        List<KServeInference.Tensor> inputs = new ArrayList<>();
        JsonNode inputsNode = root.get("inputs");
        if (inputsNode != null && inputsNode.isArray()) {
            for (JsonNode input : inputsNode) {
                inputs.add(tensor(input));
            }
        }
        JsonNode parameters = root.path("parameters");
        if (!parameters.isMissingNode() && !parameters.isNull() && !parameters.isObject()) {
            throw ApiError.badParameter("parameters", "parameters must be an object");
        }
        List<String> outputs = new ArrayList<>();
        JsonNode outputsNode = root.path("outputs");
        if (!outputsNode.isMissingNode() && !outputsNode.isNull()) {
            if (!outputsNode.isArray()) {
                throw ApiError.badParameter("outputs", "outputs must be an array of {\"name\": ...}");
            }
            for (JsonNode output : outputsNode) {
                if (!output.path("name").isTextual()) {
                    throw ApiError.badParameter("outputs", "each output needs a string name, got " + output);
                }
                outputs.add(output.path("name").textValue());
            }
        }
        JsonNode id = root.get("id");
        return new KServeInference.Request(id != null && id.isTextual() ? id.textValue() : null, inputs,
                parameters.isObject() ? (ObjectNode) parameters : null, outputs);
    }

    private static KServeInference.Tensor tensor(JsonNode input) {
        String name = input.path("name").asText("");
        JsonNode shapeNode = input.get("shape");
        JsonNode data = input.get("data");
        if (shapeNode == null || !shapeNode.isArray() || data == null || !data.isArray()) {
            throw ApiError.badParameter("inputs", "input " + name + " needs a shape and a data array");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode dim = shapeNode.get(i);
            if (!dim.isIntegralNumber() || !dim.canConvertToLong()) {
                throw ApiError.badParameter("inputs", "input " + name + " has a bad shape " + shapeNode);
            }
            shape[i] = dim.longValue();
        }
        KServeInference.Values values;
        boolean integers = true;
        boolean strings = true;
        for (JsonNode element : data) {
            integers &= element.isIntegralNumber() && element.canConvertToLong();
            strings &= element.isTextual();
        }
        if (integers) {
            long[] longs = new long[data.size()];
            for (int i = 0; i < longs.length; i++) {
                longs[i] = data.get(i).longValue();
            }
            values = new KServeInference.Values.Integers(longs);
        } else if (strings) {
            List<String> texts = new ArrayList<>();
            data.forEach(element -> texts.add(element.textValue()));
            values = new KServeInference.Values.Strings(texts);
        } else {
            values = new KServeInference.Values.Other(data.size());
        }
        return new KServeInference.Tensor(name, input.path("datatype").asText(""), shape, values);
    }

    private static void tensors(ArrayNode array, List<KServeInference.TensorMetadata> tensors) {
        for (KServeInference.TensorMetadata tensor : tensors) {
            ObjectNode node = array.addObject().put("name", tensor.name()).put("datatype", tensor.datatype());
            ArrayNode shape = node.putArray("shape");
            for (long dim : tensor.shape()) {
                shape.add(dim);
            }
        }
    }

    /** This resource's refusals, in the protocol's shape. */
    @ServerExceptionMapper
    public Response refused(ApiError e) {
        return error(e, kserve.retryAfterSeconds());
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
