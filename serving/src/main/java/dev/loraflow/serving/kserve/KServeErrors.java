package dev.loraflow.serving.kserve;

import dev.loraflow.serving.rest.ApiError;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.ext.ExceptionMapper;
import jakarta.ws.rs.ext.Provider;

/** ApiErrors thrown outside a resource's own handling (metadata lookups) in the protocol's {@code {"error"}} shape. */
@Provider
public class KServeErrors implements ExceptionMapper<ApiError> {

    @Override
    public Response toResponse(ApiError e) {
        return KServeResource.error(e, 1);
    }
}
