package dev.loraflow.serving.kserve;

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
import java.util.List;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/**
 * KServe's Open Inference Protocol v2 over REST: JSON in and out of {@link KServeInference}, which
 * documents the tensors and parameters. Errors are {@code {"error": "..."}} (this resource's mapper). The infer
 * body stays bytes until the model is found, so that an unknown model is reported as such whatever the body; then
 * it is bound to a {@link KServeInferRequest}. Health endpoints answer 200 when true and 503 when not.
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
        KServeInference.Result result = kserve.infer(name, version, API,
                () -> Requests.bind(body, config.maxBodyBytes(), KServeInferRequest.class).toInference(),
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
