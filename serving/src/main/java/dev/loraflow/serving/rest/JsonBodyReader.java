package dev.loraflow.serving.rest;

import dev.loraflow.serving.service.JsonBody;
import dev.loraflow.serving.service.Requests;
import dev.loraflow.serving.service.ServingConfig;
import jakarta.enterprise.inject.Instance;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.MultivaluedMap;
import jakarta.ws.rs.ext.MessageBodyReader;
import jakarta.ws.rs.ext.Provider;
import java.io.IOException;
import java.io.InputStream;
import java.lang.annotation.Annotation;
import java.lang.reflect.Type;

/**
 * Binds request bodies to {@link JsonBody} records whatever their content type, through {@link Requests#bind}:
 * one place for the checks every body gets (empty, not UTF-8, not JSON, duplicate keys, not an object), each a
 * 400 in the resource's own error shape (its {@code ServerExceptionMapper}).
 */
@Provider
@Consumes(MediaType.WILDCARD)
public class JsonBodyReader implements MessageBodyReader<Record> {

    /** Looked up per request: filters and readers are created at static init, before the runtime config. */
    @Inject
    Instance<ServingConfig> config;

    @Override
    public boolean isReadable(Class<?> type, Type genericType, Annotation[] annotations, MediaType mediaType) {
        return type.isRecord() && type.isAnnotationPresent(JsonBody.class);
    }

    @Override
    public Record readFrom(Class<Record> type, Type genericType, Annotation[] annotations, MediaType mediaType,
                           MultivaluedMap<String, String> headers, InputStream body) throws IOException {
        // The HTTP layer refused bodies over the limit from their length; one byte more tells a chunked one.
        byte[] bytes = body.readNBytes((int) Math.min(Integer.MAX_VALUE, config.get().maxBodyBytes() + 1));
        return Requests.bind(bytes, config.get().maxBodyBytes(), type);
    }
}
