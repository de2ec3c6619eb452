package dev.loraflow.service.support;

import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.Map;

/**
 * The error shape of the trainer's and the merger's APIs, and of every service's API-key refusals:
 * {@code {"error": "<what is wrong, in a sentence>"}} with the status that says whose fault it is (4xx the
 * request's, 503 a dependency away). Serving speaks OpenAI's and KServe's error shapes on their APIs instead.
 */
public final class ErrorResponses {

    private ErrorResponses() {}

    public static Response of(Response.Status status, String message) {
        return Response.status(status).type(MediaType.APPLICATION_JSON).entity(Map.of("error", message)).build();
    }
}
