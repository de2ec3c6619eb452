package dev.loraflow.serving.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.Requests;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;

/** OpenAI's error shape, {@code {"error": {"message", "type", "param", "code"}}}, for the OpenAI and admin APIs. */
public final class OpenAiErrors {

    private OpenAiErrors() {}

    public static ObjectNode body(ApiError e) {
        ObjectNode root = Requests.JSON.createObjectNode();
        ObjectNode error = root.putObject("error").put("message", e.getMessage()).put("type", e.type());
        if (e.param() == null) {
            error.putNull("param");
        } else {
            error.put("param", e.param());
        }
        error.put("code", e.code());
        return root;
    }

    /** The response for {@code e}; a 429 says when to retry. */
    public static Response response(ApiError e, int retryAfterSeconds) {
        Response.ResponseBuilder response = Response.status(e.status()).entity(body(e)).type(MediaType.APPLICATION_JSON);
        if (e.status() == 429) {
            response.header("Retry-After", Integer.toString(retryAfterSeconds));
        }
        return response.build();
    }
}
