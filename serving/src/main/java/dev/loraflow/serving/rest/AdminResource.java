package dev.loraflow.serving.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.inference.ModelLoadException;
import dev.loraflow.inference.ServedModel;
import dev.loraflow.platform.store.SafePaths;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.Requests;
import dev.loraflow.serving.service.Serving;
import dev.loraflow.serving.service.ServingConfig;
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
import java.io.IOException;
import java.nio.file.InvalidPathException;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/**
 * Changing what is served, behind the API key ({@code Authorization: Bearer KEY} or {@code X-API-Key}, checked
 * by {@link ApiKeys} before a body is read):
 * {@code POST /admin/models {"path": FILE.onnx, "sha256"?: HEX, "config_dir"?: DIR, "name"?: NAME}} (config.json
 * and the tokenizer in DIR, by default beside the file: a merger's graph artifact needs its merged model's
 * directory) loads, verifies and warms up a model and serves it as NAME (by default the default name,
 * {@code loraflow.serving.model.name}), switching to it atomically, the requests in flight finishing on the old one; a model that fails leaves
 * the old one serving and the answer (422) says why. {@code POST /admin/adapters {"name", "path": DIR}}
 * loads a PEFT adapter into the default (un-merged) model, {@code DELETE /admin/adapters/{name}} unloads it.
 * Paths are read only inside {@code loraflow.serving.admin-roots} (by default the artifact store): one that
 * leads elsewhere — through {@code ..} or a link — is refused with 403 {@code path_outside_roots}.
 * Bodies are bound to {@link AdminRequests} records; errors are in OpenAI's shape (this resource's mappers).
 */
@Path("/admin")
@Produces(MediaType.APPLICATION_JSON)
public class AdminResource {

    private static final Logger LOG = Logger.getLogger(AdminResource.class);

    @Inject
    Serving serving;
    @Inject
    ServingConfig config;

    @GET
    @Path("/models")
    @Operation(summary = "The model served under the default name (API key required)")
    public Response models() {
        ServedModel model = serving.current();
        return Response.ok(model == null ? Requests.JSON.createObjectNode()
                : describe(serving.modelName(), model, serving.origin(serving.modelName()))).build();
    }

    @POST
    @Path("/models")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Load, verify and warm up a model, then serve it under its name atomically (API key required)")
    public Response loadModel(AdminRequests.LoadModel request) throws ModelLoadException {
        java.nio.file.Path onnx = confined(request.path(), "path");
        // Beside the file as named, not as linked: a Hugging Face snapshot links its files into a blob store.
        java.nio.file.Path companions = confined(request.configDir() != null ? request.configDir()
                : java.nio.file.Path.of(request.path()).toAbsolutePath().normalize().getParent().toString(), "config_dir");
        String name = request.name() == null ? serving.modelName() : request.name();
        ServedModel model = serving.load(name, onnx, companions, request.sha256(), Serving.Trigger.ADMIN, null);
        return Response.ok(describe(name, model, null)).build();
    }

    @POST
    @Path("/adapters")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Load a PEFT adapter into the un-merged model (API key required)")
    public Response loadAdapter(AdminRequests.LoadAdapter request) {
        try {
            serving.loadAdapter(request.name(), confined(request.path(), "path"));
        } catch (ModelLoadException | InvalidPathException e) {
            throw new ApiError(422, "the adapter was not loaded: " + e.getMessage(), "path", "adapter_load_failed");
        }
        ServedModel model = serving.current();
        return Response.ok(describe(serving.modelName(), model, serving.origin(serving.modelName()))).build();
    }

    @DELETE
    @Path("/adapters/{name}")
    @Operation(summary = "Unload an adapter (API key required)")
    public Response unloadAdapter(@PathParam("name") String name) {
        if (!serving.unloadAdapter(name)) {
            throw new ApiError(404, "no adapter " + name + " is loaded", "name", "adapter_not_found");
        }
        return Response.noContent().build();
    }

    /** This resource's refusals, in OpenAI's shape. */
    @ServerExceptionMapper
    public Response refused(ApiError e) {
        return OpenAiErrors.response(e, 1);
    }

    /** A model that failed to load (the current one keeps serving): 422 saying why. */
    @ServerExceptionMapper({ModelLoadException.class, InvalidPathException.class})
    public Response notLoaded(Exception e) {
        LOG.warnf("model not loaded, the current one keeps serving: %s", e.getMessage());
        return OpenAiErrors.response(new ApiError(422, "the model was not loaded (the current one keeps serving): "
                + e.getMessage(), "path", "model_load_failed"), 1);
    }

    private java.nio.file.Path confined(String requested, String field) {
        try {
            return SafePaths.confine(config.adminRoots().stream().map(java.nio.file.Path::of).toList(), requested, field);
        } catch (IllegalArgumentException e) {
            throw new ApiError(403, e.getMessage() + "; the directories are set by loraflow.serving.admin-roots", field,
                    "path_outside_roots");
        } catch (IOException e) {
            throw new ApiError(422, field + " \"" + requested + "\" cannot be resolved: " + e.getMessage(), field,
                    "path_unreadable");
        }
    }

    private static ObjectNode describe(String name, ServedModel model, Serving.Origin origin) {
        ObjectNode root = Requests.JSON.createObjectNode().put("name", name).put("version", model.version())
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
