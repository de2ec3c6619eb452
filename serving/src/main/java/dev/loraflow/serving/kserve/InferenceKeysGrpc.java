package dev.loraflow.serving.kserve;

import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.InferenceKeys;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.quarkus.grpc.GlobalInterceptor;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@link InferenceKeys} on the gRPC port: the key in the call's metadata ({@code authorization: Bearer KEY} or
 * {@code x-api-key}) for every call but ServerLive and ServerReady; a ModelInfer holds a place of its key
 * until the call ends. Refusals: UNAUTHENTICATED, RESOURCE_EXHAUSTED.
 */
@ApplicationScoped
@GlobalInterceptor
public class InferenceKeysGrpc implements ServerInterceptor {

    private static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final Metadata.Key<String> API_KEY = Metadata.Key.of("x-api-key", Metadata.ASCII_STRING_MARSHALLER);
    private static final Set<String> OPEN = Set.of("ServerLive", "ServerReady");

    @Inject
    InferenceKeys keys;

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        String method = call.getMethodDescriptor().getBareMethodName();
        if (!keys.enabled() || OPEN.contains(method)) {
            return next.startCall(call, headers);
        }
        AtomicReference<Runnable> release = new AtomicReference<>(() -> { });
        ApiError refused = keys.admit(headers.get(AUTHORIZATION), headers.get(API_KEY), "ModelInfer".equals(method),
                release::set);
        if (refused != null) {
            call.close((refused.status() == 429 ? Status.RESOURCE_EXHAUSTED : Status.UNAUTHENTICATED)
                    .withDescription(refused.getMessage()), new Metadata());
            return new ServerCall.Listener<>() { };
        }
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(call, headers)) {
            @Override
            public void onComplete() {
                release.get().run();
                super.onComplete();
            }

            @Override
            public void onCancel() {
                release.get().run();
                super.onCancel();
            }
        };
    }
}
