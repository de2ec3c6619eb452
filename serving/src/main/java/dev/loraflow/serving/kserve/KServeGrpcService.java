package dev.loraflow.serving.kserve;

import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import dev.loraflow.serving.kserve.grpc.GRPCInferenceServiceGrpc;
import dev.loraflow.serving.kserve.grpc.InferParameter;
import dev.loraflow.serving.kserve.grpc.InferTensorContents;
import dev.loraflow.serving.kserve.grpc.ModelInferRequest;
import dev.loraflow.serving.kserve.grpc.ModelInferResponse;
import dev.loraflow.serving.kserve.grpc.ModelMetadataRequest;
import dev.loraflow.serving.kserve.grpc.ModelMetadataResponse;
import dev.loraflow.serving.kserve.grpc.ModelReadyRequest;
import dev.loraflow.serving.kserve.grpc.ModelReadyResponse;
import dev.loraflow.serving.kserve.grpc.ServerLiveRequest;
import dev.loraflow.serving.kserve.grpc.ServerLiveResponse;
import dev.loraflow.serving.kserve.grpc.ServerMetadataRequest;
import dev.loraflow.serving.kserve.grpc.ServerMetadataResponse;
import dev.loraflow.serving.kserve.grpc.ServerReadyRequest;
import dev.loraflow.serving.kserve.grpc.ServerReadyResponse;
import dev.loraflow.serving.service.ApiError;
import dev.loraflow.serving.service.GenerationParameters;
import dev.loraflow.serving.service.Generations;
import dev.loraflow.serving.service.Requests;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.quarkus.grpc.GrpcService;
import io.smallrye.common.annotation.Blocking;
import jakarta.inject.Inject;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * KServe's Open Inference Protocol v2 over gRPC ({@code inference.GRPCInferenceService}, on its own port,
 * {@code quarkus.grpc.server.port}): protobuf in and out of {@link KServeInference}, as {@link
 * KServeResource} does JSON. Inputs come typed ({@code contents}) or raw ({@code raw_input_contents});
 * a raw request gets a raw response. Refusals are the call's status: NOT_FOUND for an unknown model or
 * version, INVALID_ARGUMENT for bad tensors or parameters, UNAVAILABLE before a model is loaded,
 * RESOURCE_EXHAUSTED when the queue is full, each with the REST API's message.
 */
@GrpcService
public class KServeGrpcService extends GRPCInferenceServiceGrpc.GRPCInferenceServiceImplBase {

    private static final String API = "kserve_v2_grpc";

    @Inject
    KServeInference kserve;

    @Override
    public void serverLive(ServerLiveRequest request, StreamObserver<ServerLiveResponse> response) {
        answer(response, () -> ServerLiveResponse.newBuilder().setLive(kserve.live()).build());
    }

    @Override
    public void serverReady(ServerReadyRequest request, StreamObserver<ServerReadyResponse> response) {
        answer(response, () -> ServerReadyResponse.newBuilder().setReady(kserve.ready()).build());
    }

    @Override
    public void modelReady(ModelReadyRequest request, StreamObserver<ModelReadyResponse> response) {
        answer(response, () -> {
            kserve.requireReady(request.getName(), request.getVersion());
            return ModelReadyResponse.newBuilder().setReady(true).build();
        });
    }

    @Override
    public void serverMetadata(ServerMetadataRequest request, StreamObserver<ServerMetadataResponse> response) {
        answer(response, () -> {
            KServeInference.ServerMetadata metadata = kserve.serverMetadata();
            return ServerMetadataResponse.newBuilder().setName(metadata.name()).setVersion(metadata.version())
                    .addAllExtensions(metadata.extensions()).build();
        });
    }

    @Override
    public void modelMetadata(ModelMetadataRequest request, StreamObserver<ModelMetadataResponse> response) {
        answer(response, () -> {
            KServeInference.ModelMetadata metadata = kserve.modelMetadata(request.getName(), request.getVersion());
            ModelMetadataResponse.Builder builder = ModelMetadataResponse.newBuilder().setName(metadata.name())
                    .addAllVersions(metadata.versions()).setPlatform(metadata.platform());
            metadata.inputs().forEach(tensor -> builder.addInputs(tensorMetadata(tensor)));
            metadata.outputs().forEach(tensor -> builder.addOutputs(tensorMetadata(tensor)));
            return builder.build();
        });
    }

    /**
     * Blocking: the call waits for the whole generation, on a worker thread rather than the event loop. The
     * generation is cancelled when the call's context is: the client cancelled, disconnected or passed its
     * deadline. The context, not the observer's cancel handler, because Quarkus replays a blocking call's
     * listener events in order on the worker, so the call's onCancel would only arrive after the generation.
     */
    @Override
    @Blocking
    public void modelInfer(ModelInferRequest request, StreamObserver<ModelInferResponse> response) {
        Context call = Context.current();
        Generations.ExchangeEnd end = action -> call.addListener(ignored -> action.run(), Runnable::run);
        answer(response, () -> {
            boolean raw = request.getRawInputContentsCount() > 0;
            KServeInference.Result result = kserve.infer(request.getModelName(), request.getModelVersion(), API,
                    () -> request(request), end);
            ModelInferResponse.Builder builder = ModelInferResponse.newBuilder().setModelName(result.modelName())
                    .setModelVersion(result.modelVersion())
                    .putParameters("finish_reason", InferParameter.newBuilder().setStringParam(result.finishReason()).build())
                    .putParameters("prompt_tokens", InferParameter.newBuilder().setInt64Param(result.promptTokens()).build())
                    .putParameters("completion_tokens",
                            InferParameter.newBuilder().setInt64Param(result.completionTokens()).build());
            if (result.id() != null) {
                builder.setId(result.id());
            }
            for (KServeInference.Tensor tensor : result.outputs()) {
                ModelInferResponse.InferOutputTensor.Builder output = ModelInferResponse.InferOutputTensor.newBuilder()
                        .setName(tensor.name()).setDatatype(tensor.datatype());
                for (long dim : tensor.shape()) {
                    output.addShape(dim);
                }
                if (raw) {
                    builder.addRawOutputContents(rawContents(tensor.values()));
                } else {
                    output.setContents(contents(tensor.values()));
                }
                builder.addOutputs(output);
            }
            return builder.build();
        });
    }

    private static <T> void answer(StreamObserver<T> response, Supplier<T> call) {
        T message;
        try {
            message = call.get();
        } catch (ApiError e) {
            response.onError(status(e).withDescription(e.getMessage()).asRuntimeException());
            return;
        }
        response.onNext(message);
        response.onCompleted();
    }

    static Status status(ApiError e) {
        return switch (e.status()) {
            case 404 -> Status.NOT_FOUND;
            case 429 -> Status.RESOURCE_EXHAUSTED;
            case 499 -> Status.CANCELLED;
            case 503 -> Status.UNAVAILABLE;
            case 500 -> Status.INTERNAL;
            case 504 -> Status.DEADLINE_EXCEEDED;
            default -> e.status() >= 400 && e.status() < 500 ? Status.INVALID_ARGUMENT : Status.UNKNOWN;
        };
    }

    private static KServeInference.Request request(ModelInferRequest request) {
        int raw = request.getRawInputContentsCount();
        if (raw > 0 && raw != request.getInputsCount()) {
            throw ApiError.badParameter("raw_input_contents", "raw_input_contents holds " + raw
                    + " entries for " + request.getInputsCount() + " inputs; give one per input, in their order");
        }
        List<KServeInference.Tensor> inputs = new ArrayList<>();
        for (int i = 0; i < request.getInputsCount(); i++) {
            ModelInferRequest.InferInputTensor input = request.getInputs(i);
            KServeInference.Values values;
            if (raw > 0) {
                if (count(input.getContents()) > 0) {
                    throw ApiError.badParameter("inputs", "input " + input.getName()
                            + " has contents although the request sends raw_input_contents; give one or the other");
                }
                values = rawValues(input, request.getRawInputContents(i));
            } else {
                values = typedValues(input);
            }
            inputs.add(new KServeInference.Tensor(input.getName(), input.getDatatype(),
                    input.getShapeList().stream().mapToLong(Long::longValue).toArray(), values));
        }
        List<String> outputs = request.getOutputsList().stream()
                .map(ModelInferRequest.InferRequestedOutputTensor::getName).toList();
        return new KServeInference.Request(request.getId().isEmpty() ? null : request.getId(), inputs,
                parameters(request.getParametersMap()), outputs);
    }

    /** The values in the contents field of the tensor's datatype. */
    private static KServeInference.Values typedValues(ModelInferRequest.InferInputTensor input) {
        InferTensorContents contents = input.getContents();
        KServeInference.Values values = switch (input.getDatatype()) {
            case "INT64" -> new KServeInference.Values.Integers(
                    contents.getInt64ContentsList().stream().mapToLong(Long::longValue).toArray());
            case "INT32", "INT16", "INT8" -> new KServeInference.Values.Integers(
                    contents.getIntContentsList().stream().mapToLong(Integer::longValue).toArray());
            case "BYTES" -> {
                List<String> texts = new ArrayList<>();
                for (ByteString bytes : contents.getBytesContentsList()) {
                    texts.add(utf8(bytes, input.getName()));
                }
                yield new KServeInference.Values.Strings(texts);
            }
            default -> new KServeInference.Values.Other(count(contents));
        };
        if (values.size() == 0 && count(contents) > 0) {
            throw ApiError.badParameter("inputs", "input " + input.getName() + " is " + input.getDatatype()
                    + ", but its values are in another contents field than the one of that datatype");
        }
        return values;
    }

    /** Row-major little-endian elements; BYTES elements each a 4-byte little-endian length and the bytes. */
    private static KServeInference.Values rawValues(ModelInferRequest.InferInputTensor input, ByteString raw) {
        ByteBuffer buffer = raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        String name = input.getName();
        switch (input.getDatatype()) {
            case "INT64" -> {
                if (buffer.remaining() % Long.BYTES != 0) {
                    throw ApiError.badParameter("raw_input_contents", "raw INT64 input " + name + " is "
                            + buffer.remaining() + " bytes, not a multiple of 8");
                }
                long[] values = new long[buffer.remaining() / Long.BYTES];
                buffer.asLongBuffer().get(values);
                return new KServeInference.Values.Integers(values);
            }
            case "INT32" -> {
                if (buffer.remaining() % Integer.BYTES != 0) {
                    throw ApiError.badParameter("raw_input_contents", "raw INT32 input " + name + " is "
                            + buffer.remaining() + " bytes, not a multiple of 4");
                }
                long[] values = new long[buffer.remaining() / Integer.BYTES];
                for (int i = 0; i < values.length; i++) {
                    values[i] = buffer.getInt();
                }
                return new KServeInference.Values.Integers(values);
            }
            case "BYTES" -> {
                List<String> texts = new ArrayList<>();
                while (buffer.hasRemaining()) {
                    if (buffer.remaining() < Integer.BYTES) {
                        throw ApiError.badParameter("raw_input_contents", "raw BYTES input " + name
                                + " ends inside an element's 4-byte length");
                    }
                    int length = buffer.getInt();
                    if (length < 0 || length > buffer.remaining()) {
                        throw ApiError.badParameter("raw_input_contents", "raw BYTES input " + name + " has an element of "
                                + Integer.toUnsignedString(length) + " bytes, more than the " + buffer.remaining() + " left");
                    }
                    byte[] element = new byte[length];
                    buffer.get(element);
                    texts.add(utf8(ByteString.copyFrom(element), name));
                }
                return new KServeInference.Values.Strings(texts);
            }
            default -> throw ApiError.badParameter("inputs", "input " + name + " is " + input.getDatatype()
                    + "; the model takes " + KServeInference.INPUT_IDS + " as INT64 or INT32 and "
                    + KServeInference.TEXT_INPUT + " as BYTES");
        }
    }

    private static String utf8(ByteString bytes, String input) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes.asReadOnlyByteBuffer()).toString();
        } catch (CharacterCodingException e) {
            throw ApiError.badParameter("inputs", "input " + input + " is not valid UTF-8");
        }
    }

    private static int count(InferTensorContents contents) {
        return contents.getBoolContentsCount() + contents.getIntContentsCount() + contents.getInt64ContentsCount()
                + contents.getUintContentsCount() + contents.getUint64ContentsCount() + contents.getFp32ContentsCount()
                + contents.getFp64ContentsCount() + contents.getBytesContentsCount();
    }

    /** The parameters bound as the REST API binds its JSON object of them: one check of them for both transports. */
    private static GenerationParameters parameters(Map<String, InferParameter> parameters) {
        ObjectNode json = Requests.JSON.createObjectNode();
        parameters.forEach((name, value) -> {
            switch (value.getParameterChoiceCase()) {
                case BOOL_PARAM -> json.put(name, value.getBoolParam());
                case INT64_PARAM -> json.put(name, value.getInt64Param());
                case STRING_PARAM -> json.put(name, value.getStringParam());
                case DOUBLE_PARAM -> json.put(name, value.getDoubleParam());
                case UINT64_PARAM -> json.put(name, new BigInteger(Long.toUnsignedString(value.getUint64Param())));
                case PARAMETERCHOICE_NOT_SET -> json.putNull(name);
            }
        });
        return Requests.bind(json, GenerationParameters.class);
    }

    private static InferTensorContents contents(KServeInference.Values values) {
        InferTensorContents.Builder contents = InferTensorContents.newBuilder();
        switch (values) {
            case KServeInference.Values.Integers(long[] longs) -> {
                for (long value : longs) {
                    contents.addInt64Contents(value);
                }
            }
            case KServeInference.Values.Strings(List<String> texts) -> texts.forEach(
                    text -> contents.addBytesContents(ByteString.copyFromUtf8(text)));
            case KServeInference.Values.Other _ -> throw new IllegalStateException("no output holds other values");
        }
        return contents.build();
    }

    private static ByteString rawContents(KServeInference.Values values) {
        return switch (values) {
            case KServeInference.Values.Integers(long[] longs) -> {
                ByteBuffer buffer = ByteBuffer.allocate(longs.length * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                buffer.asLongBuffer().put(longs);
                yield ByteString.copyFrom(buffer.array());
            }
            case KServeInference.Values.Strings(List<String> texts) -> {
                List<byte[]> elements = texts.stream().map(text -> text.getBytes(StandardCharsets.UTF_8)).toList();
                ByteBuffer buffer = ByteBuffer.allocate(elements.stream().mapToInt(bytes -> Integer.BYTES + bytes.length).sum())
                        .order(ByteOrder.LITTLE_ENDIAN);
                elements.forEach(bytes -> buffer.putInt(bytes.length).put(bytes));
                yield ByteString.copyFrom(buffer.array());
            }
            case KServeInference.Values.Other _ -> throw new IllegalStateException("no output holds other values");
        };
    }

    private static ModelMetadataResponse.TensorMetadata tensorMetadata(KServeInference.TensorMetadata tensor) {
        ModelMetadataResponse.TensorMetadata.Builder builder = ModelMetadataResponse.TensorMetadata.newBuilder()
                .setName(tensor.name()).setDatatype(tensor.datatype());
        for (long dim : tensor.shape()) {
            builder.addShape(dim);
        }
        return builder.build();
    }
}
