package dev.loraflow.serving.rest;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.inference.ChatTemplate;
import dev.loraflow.inference.Completion;
import dev.loraflow.inference.DeadlineExceededException;
import dev.loraflow.inference.GenerationRequest;
import dev.loraflow.inference.ServedModel;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.Generations;
import dev.loraflow.serving.service.Requests;
import dev.loraflow.serving.service.Serving;
import dev.loraflow.serving.service.ServingConfig;
import io.vertx.ext.web.RoutingContext;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.StreamingOutput;
import jakarta.ws.rs.core.UriInfo;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/**
 * OpenAI-compatible completions: {@code POST /v1/completions}, {@code POST /v1/chat/completions},
 * {@code GET /v1/models} (beyond OpenAI: the served {@code version}, as in {@code system_fingerprint}, and for a
 * model loaded from a {@code loraflow.models.merged} event the {@code announced} model and model_version).
 * The {@code model} field names the base model or a loaded adapter. Streaming is
 * server-sent events, {@code data: {chunk}} per piece of text and {@code data: [DONE]} at the end.
 * Bodies are bound to {@link OpenAiRequests} records, checked as they are built; errors are OpenAI's
 * {@code {"error": {"message", "type", "param", "code"}}}.
 *
 * <p>Chat prompts are the model's {@code tokenizer_config.json} {@code chat_template} rendered over the
 * messages (see {@link ChatTemplate}); a template that fails or refuses the messages answers 400 with
 * code {@code chat_template_failed}. Without one, each message becomes {@code <|role|>\ncontent\n}, then
 * {@code <|assistant|>\n}. Generation ends at the tokenizer's end-of-text token.
 *
 * <p>Beyond OpenAI: {@code top_k}, and each completion choice's {@code token_ids}, the generated ids
 * (the only output of a model served without a tokenizer, whose prompts are then token ids).
 */
@Path("/v1")
public class OpenAiResource {

    private static final Logger LOG = Logger.getLogger(OpenAiResource.class);
    private static final int DEFAULT_MAX_TOKENS = 16;

    @Inject
    Serving serving;
    @Inject
    Generations generations;

    @Inject
    ServingConfig config;

    @GET
    @Path("/models")
    @Produces(MediaType.APPLICATION_JSON)
    @Operation(summary = "The models served by name, and the adapters on them")
    public Response models() {
        ObjectNode root = Requests.JSON.createObjectNode().put("object", "list");
        ArrayNode data = root.putArray("data");
        for (Serving.Listing model : serving.models()) {
            ObjectNode entry = data.addObject().put("id", model.name()).put("object", "model")
                    .put("created", model.loadedAtEpochSeconds()).put("owned_by", "loraflow").put("version", model.version())
                    .put("loaded", model.open());
            if (model.origin() != null) {
                entry.putObject("announced").put("model", model.origin().model())
                        .put("model_version", model.origin().modelVersion());
            }
            for (String adapter : model.adapters()) {
                data.addObject().put("id", adapter).put("object", "model").put("created", model.loadedAtEpochSeconds())
                        .put("owned_by", "loraflow").put("parent", model.name());
            }
        }
        return Response.ok(root).build();
    }

    @POST
    @Path("/completions")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "OpenAI text completion, streamed as server-sent events with stream=true")
    public Response completions(OpenAiRequests.CompletionRequest body, @Context RoutingContext routing) {
        return generate(body, false, Generations.ExchangeEnd.of(routing));
    }

    @POST
    @Path("/chat/completions")
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "OpenAI chat completion through the model's chat template, streamed with stream=true")
    public Response chatCompletions(OpenAiRequests.ChatCompletionRequest body, @Context RoutingContext routing) {
        return generate(body, true, Generations.ExchangeEnd.of(routing));
    }

    private Response generate(OpenAiRequests.OpenAiRequest body, boolean chat, Generations.ExchangeEnd end) {
        String api = api(chat);
        OpenAiRequests.Options options = body.options();
        Serving.Target target = acquire(options.model());
        boolean submitted = false;
        try {
            ServedModel model = target.model();
            int[] prompt = body.promptTokens(model);
            int maxTokensDefault = chat ? model.contextLength() - prompt.length : DEFAULT_MAX_TOKENS;
            GenerationRequest request = options.parameters().request(prompt, model, target.adapter(),
                    Math.max(1, maxTokensDefault));
            String id = (chat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID();
            long created = System.currentTimeMillis() / 1000;
            String servedName = target.servedName();
            submitted = true;
            if (!options.streamed()) {
                Completion completion = generations.complete(target, request, api, end);
                return Response.ok(completionBody(chat, id, created, servedName, completion)).build();
            }
            Generations.Stream events = generations.stream(target, request, api, end);
            boolean textOut = model.tokenizer() != null;
            boolean includeUsage = options.includeUsage();
            StreamingOutput output = out -> writeStream(out, events, chat, id, created, servedName, includeUsage, textOut);
            return Response.ok(output, "text/event-stream").header("Cache-Control", "no-cache").build();
        } finally {
            // Handed to the engine, the lease is the engine's to release.
            if (!submitted) {
                target.model().release();
            }
        }
    }

    private static String api(boolean chat) {
        return chat ? "openai_chat" : "openai_completions";
    }

    /** This resource's refusals, in OpenAI's shape, counted by API and status. */
    @ServerExceptionMapper
    public Response refused(ApiError e, UriInfo uri) {
        generations.refused(api(uri.getPath().endsWith("/chat/completions")), e.status());
        return OpenAiErrors.response(e, config.retryAfterSeconds());
    }

    /** Anything else that failed, as OpenAI's server_error. */
    @ServerExceptionMapper
    public Response failed(RuntimeException e) {
        LOG.error("generation failed", e);
        return OpenAiErrors.response(new ApiError(500, "the generation failed: " + e.getMessage(), null, "server_error"), 0);
    }

    private Serving.Target acquire(String modelName) {
        Serving.Target target = serving.acquire(modelName);
        if (target != null) {
            return target;
        }
        if (!serving.ready()) {
            throw new ApiError(503, "no model is loaded yet", "model", "model_not_loaded");
        }
        throw new ApiError(404, "the model '" + modelName + "' does not exist; GET /v1/models lists those served",
                "model", "model_not_found");
    }

    private static String finishReason(FinishReason reason) {
        return reason == FinishReason.STOP ? "stop" : "length";
    }

    private static ObjectNode completionBody(boolean chat, String id, long created, String model, Completion completion) {
        ObjectNode root = Requests.JSON.createObjectNode().put("id", id)
                .put("object", chat ? "chat.completion" : "text_completion").put("created", created).put("model", model)
                .put("system_fingerprint", fingerprint(completion));
        ObjectNode choice = root.putArray("choices").addObject().put("index", 0);
        String text = completion.text() == null ? "" : completion.text();
        if (chat) {
            choice.putObject("message").put("role", "assistant").put("content", text);
        } else {
            choice.put("text", text).putNull("logprobs");
            ArrayNode ids = choice.putArray("token_ids");
            for (int token : completion.tokens()) {
                ids.add(token);
            }
        }
        choice.put("finish_reason", finishReason(completion.finishReason()));
        usage(root, completion);
        return root;
    }

    /** The model version every token came from, as OpenAI's system_fingerprint. */
    private static String fingerprint(Completion completion) {
        return "loraflow-v" + completion.modelVersion();
    }

    private static void usage(ObjectNode root, Completion completion) {
        root.putObject("usage").put("prompt_tokens", completion.promptTokens())
                .put("completion_tokens", completion.tokens().length)
                .put("total_tokens", completion.promptTokens() + completion.tokens().length);
    }

    private void writeStream(OutputStream out, Generations.Stream stream, boolean chat, String id, long created,
                             String model, boolean includeUsage, boolean textOut) throws IOException {
        try {
            if (chat) {
                ObjectNode first = chunk(true, id, created, model, null);
                ((ObjectNode) first.withArray("choices").get(0)).putObject("delta").put("role", "assistant").put("content", "");
                send(out, first);
            }
            int sentChars = 0;
            // Ids whose text is held back (part of a character, or maybe a stop sequence) go out with the next text.
            List<Integer> unsentIds = new ArrayList<>();
            while (true) {
                Generations.Event event = stream.events().take();
                switch (event) {
                    case Generations.Event.Token token -> {
                        unsentIds.add(token.id());
                        if (!token.text().isEmpty() || !textOut) {
                            send(out, textChunk(chat, id, created, model, token.text(), unsentIds, null));
                            unsentIds.clear();
                            sentChars += token.text().length();
                        }
                    }
                    case Generations.Event.Done done -> {
                        Completion completion = done.completion();
                        String text = completion.text() == null ? "" : completion.text();
                        ObjectNode last = textChunk(chat, id, created, model, text.substring(Math.min(sentChars, text.length())),
                                unsentIds, finishReason(completion.finishReason()));
                        last.put("system_fingerprint", fingerprint(completion));
                        send(out, last);
                        if (includeUsage) {
                            ObjectNode usage = chunk(chat, id, created, model, null);
                            usage.putArray("choices");
                            usage(usage, completion);
                            send(out, usage);
                        }
                        out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
                        out.flush();
                        return;
                    }
                    case Generations.Event.Failed failed -> {
                        ApiError reason = failed.error() instanceof DeadlineExceededException late ? generations.timedOut(late)
                                : new ApiError(500, "the generation failed: " + failed.error().getMessage(), null,
                                "server_error");
                        ObjectNode error = OpenAiErrors.body(reason);
                        send(out, error);
                        out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
                        out.flush();
                        return;
                    }
                    case Generations.Event.Gone gone -> {
                        return;
                    }
                }
            }
        } catch (IOException e) {
            // The client went away: its sequence leaves the batch at the next step.
            stream.generation().cancel();
            throw e;
        } catch (InterruptedException e) {
            stream.generation().cancel();
            Thread.currentThread().interrupt();
        }
    }

    private static ObjectNode chunk(boolean chat, String id, long created, String model, String finishReason) {
        ObjectNode root = Requests.JSON.createObjectNode().put("id", id)
                .put("object", chat ? "chat.completion.chunk" : "text_completion").put("created", created)
                .put("model", model);
        ObjectNode choice = root.putArray("choices").addObject().put("index", 0);
        if (finishReason == null) {
            choice.putNull("finish_reason");
        } else {
            choice.put("finish_reason", finishReason);
        }
        return root;
    }

    private static ObjectNode textChunk(boolean chat, String id, long created, String model, String text,
                                        List<Integer> tokens, String finishReason) {
        ObjectNode root = chunk(chat, id, created, model, finishReason);
        ObjectNode choice = (ObjectNode) root.withArray("choices").get(0);
        if (chat) {
            ObjectNode delta = choice.putObject("delta");
            if (!text.isEmpty() || finishReason == null) {
                delta.put("content", text);
            }
        } else {
            choice.put("text", text).putNull("logprobs");
            ArrayNode ids = choice.putArray("token_ids");
            for (int token : tokens) {
                ids.add(token);
            }
        }
        return root;
    }

    private static void send(OutputStream out, ObjectNode chunk) throws IOException {
        out.write(("data: " + Requests.JSON.writeValueAsString(chunk) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }
}
