package dev.loraflow.serving.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.inference.ServedModel;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.logging.Logger;

/**
 * Changing what is served, behind the API key ({@code Authorization: Bearer KEY} or {@code X-API-Key}, checked
 * by {@link ApiKeys} before a body is read):
 * {@code POST /admin/models {"path": FILE.onnx, "sha256"?: HEX, "config_dir"?: DIR}} (config.json and the
 * tokenizer in DIR, by default beside the file: a merger's graph artifact needs its merged model's directory)
 * loads, verifies and warms up a model and
 * switches to it atomically, the requests in flight finishing on the old one; a model that fails leaves
 * the old one serving and the answer (422) says why. {@code POST /admin/adapters {"name", "path": DIR}}
 * loads a PEFT adapter into an un-merged model, {@code DELETE /admin/adapters/{name}} unloads it.
 * Errors are in OpenAI's shape.
 */
@Path("/admin")
@Produces(MediaType.APPLICATION_JSON)
public class AdminResource {

    private static final Logger LOG = Logger.getLogger(AdminResource.class);

    @Inject
    Serving serving;

    @ConfigProperty(name = "loraflow.serving.max-body-bytes", defaultValue = "1048576")
    long maxBodyBytes;

    @GET
    @Path("/models")
    @Operation(summary = "The model served (API key required)")
    public Response models() {
        ServedModel model = serving.current();
        return Response.ok(model == null ? Requests.JSON.createObjectNode() : describe(model, serving.origin(model))).build();
    }

    @POST
    @Path("/models")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Load, verify and warm up a model, then switch to it atomically (API key required)")
    public Response loadModel(byte[] body) {
        try {
            JsonNode root = Requests.jsonObject(body, maxBodyBytes);
            String path = Requests.requiredString(root, "path");
            String sha = Requests.optionalString(root, "sha256", "a hex string");
            String configDir = Requests.optionalString(root, "config_dir", "a directory path");
            java.nio.file.Path onnx = java.nio.file.Path.of(path);
            java.nio.file.Path companions = configDir == null ? onnx.toAbsolutePath().getParent() : java.nio.file.Path.of(configDir);
            ServedModel model = serving.load(onnx, companions, sha, Serving.Trigger.ADMIN, null);
            return Response.ok(describe(model, null)).build();
        } catch (ApiError e) {
            return OpenAiResource.error(e, 1);
        } catch (ModelLoadException | java.nio.file.InvalidPathException e) {
            LOG.warnf("model not loaded, the current one keeps serving: %s", e.getMessage());
            return OpenAiResource.error(new ApiError(422, "the model was not loaded (the current one keeps serving): "
                    + e.getMessage(), "path", "model_load_failed"), 1);
        }
    }

    @POST
    @Path("/adapters")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Load a PEFT adapter into the un-merged model (API key required)")
    public Response loadAdapter(byte[] body) {
        try {
            JsonNode root = Requests.jsonObject(body, maxBodyBytes);
            String name = Requests.requiredString(root, "name");
            if (name.isBlank()) {
                throw ApiError.badParameter("name", "name must not be blank");
            }
            String path = Requests.requiredString(root, "path");
            serving.loadAdapter(name, java.nio.file.Path.of(path));
            ServedModel model = serving.current();
            return Response.ok(describe(model, serving.origin(model))).build();
        } catch (ApiError e) {
            return OpenAiResource.error(e, 1);
        } catch (ModelLoadException | java.nio.file.InvalidPathException e) {
            return OpenAiResource.error(new ApiError(422, "the adapter was not loaded: " + e.getMessage(), "path",
                    "adapter_load_failed"), 1);
        }
    }

    @DELETE
    @Path("/adapters/{name}")
    @Operation(summary = "Unload an adapter (API key required)")
    public Response unloadAdapter(@PathParam("name") String name) {
        if (!serving.unloadAdapter(name)) {
            return OpenAiResource.error(new ApiError(404, "no adapter " + name + " is loaded", "name", "adapter_not_found"), 1);
        }
        return Response.noContent().build();
    }

    private static ObjectNode describe(ServedModel model, Serving.Origin origin) {
        ObjectNode root = Requests.JSON.createObjectNode().put("name", model.name()).put("version", model.version())
                .put("sha256", model.sha256()).put("path", model.file().toString()).put("provider", model.provider())
                .put("context_length", model.contextLength()).put("tokenizer", model.tokenizer() != null);
        if (origin != null) {
            root.putObject("announced").put("model", origin.model()).put("model_version", origin.modelVersion());
        }
        var adapters = root.putArray("adapters");
        model.adapterNames().forEach(adapters::add);
        return root;
    }
}
