package dev.loraflow.merger.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.merger.service.Merges;
import dev.loraflow.merger.service.MergerService;
import dev.loraflow.service.support.ErrorResponses;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Merges on request: {@code POST /merges {"job_id": ..., "step": ...}} (API key) merges a checkpoint the
 * merger has seen on its topic whatever the trigger; {@code GET /merges/{job}/{step}} shows its outcome.
 */
@Path("/merges")
public class MergesResource {

    private static final Pattern JOB_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
    private static final int MAX_REQUEST_BYTES = 4096;
    private static final ObjectMapper JSON = new ObjectMapper();

    @Inject
    MergerService service;

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    public Response request(byte[] body) throws IOException {
        if (body == null || body.length > MAX_REQUEST_BYTES) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, "a merge request is a JSON object of at most " + MAX_REQUEST_BYTES + " bytes");
        }
        JsonNode request;
        try {
            request = JSON.readTree(body);
        } catch (IOException e) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, "not valid JSON: " + e.getMessage());
        }
        String jobId = request == null ? null : request.path("job_id").asText(null);
        JsonNode step = request == null ? null : request.get("step");
        if (jobId == null || !JOB_ID.matcher(jobId).matches()) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, "\"job_id\" must be 1–128 of [A-Za-z0-9._-], starting alphanumeric");
        }
        if (step == null || !step.isIntegralNumber() || !step.canConvertToLong() || step.asLong() < 0) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, "\"step\" must be a non-negative integer");
        }
        Merges.RequestStatus status = service.merges().request(jobId, step.asLong());
        Map<String, Object> answer = Map.of("job_id", jobId, "step", step.asLong(), "status", status.name().toLowerCase());
        return switch (status) {
            case QUEUED -> Response.accepted(answer).build();
            case MERGED, FAILED -> Response.ok(answer).build();
            case UNKNOWN_CHECKPOINT -> ErrorResponses.of(Response.Status.NOT_FOUND, "no checkpoint " + jobId + " step " + step.asLong()
                    + " has been seen on the checkpoints topic");
        };
    }

    @GET
    @Path("/{job}/{step}")
    @Produces(MediaType.APPLICATION_JSON)
    public Response outcome(@PathParam("job") String jobId, @PathParam("step") long step) throws IOException {
        if (!JOB_ID.matcher(jobId).matches()) {
            return ErrorResponses.of(Response.Status.BAD_REQUEST, "not a job id: " + jobId);
        }
        Optional<JsonNode> outcome = service.merges().outcome(jobId, step);
        return outcome.isEmpty() ? ErrorResponses.of(Response.Status.NOT_FOUND, "no outcome for " + jobId + " step " + step + " yet")
                : Response.ok(outcome.get()).build();
    }
}
