package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.serving.kserve.grpc.GRPCInferenceServiceGrpc;
import dev.loraflow.serving.kserve.grpc.InferParameter;
import dev.loraflow.serving.kserve.grpc.InferTensorContents;
import dev.loraflow.serving.kserve.grpc.ModelInferRequest;
import dev.loraflow.serving.kserve.grpc.ModelInferResponse;
import dev.loraflow.serving.kserve.grpc.ModelMetadataRequest;
import dev.loraflow.serving.kserve.grpc.ModelMetadataResponse;
import dev.loraflow.serving.kserve.grpc.ModelReadyRequest;
import dev.loraflow.serving.kserve.grpc.ServerLiveRequest;
import dev.loraflow.serving.kserve.grpc.ServerMetadataRequest;
import dev.loraflow.serving.kserve.grpc.ServerMetadataResponse;
import dev.loraflow.serving.kserve.grpc.ServerReadyRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * KServe v2 over gRPC on tiny model A, through the generated blocking stub on a plain channel to the
 * server's port: every RPC, typed and raw tensors, every refusal's status, and answers equal to the
 * REST endpoint's and to core's generator.
 */
@QuarkusTest
@TestProfile(ServingProfile.class)
class KServeGrpcTest {

    private static ManagedChannel channel;
    private static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub kserve;

    /** The port the gRPC server bound (test-port 0 takes a free one). */
    static int grpcPort() {
        return ConfigProvider.getConfig().getValue("quarkus.grpc.server.test-port", Integer.class);
    }

    static GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub connect() {
        channel = ManagedChannelBuilder.forAddress("localhost", grpcPort()).usePlaintext().build();
        return GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
    }

    @BeforeAll
    static void open() {
        kserve = connect();
    }

    @AfterAll
    static void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private static InferParameter integer(long value) {
        return InferParameter.newBuilder().setInt64Param(value).build();
    }

    private static ModelInferRequest.InferInputTensor.Builder tensor(String name, String datatype, long... shape) {
        ModelInferRequest.InferInputTensor.Builder tensor = ModelInferRequest.InferInputTensor.newBuilder()
                .setName(name).setDatatype(datatype);
        Arrays.stream(shape).forEach(tensor::addShape);
        return tensor;
    }

    static ModelInferRequest.InferInputTensor ids(long... ids) {
        InferTensorContents.Builder contents = InferTensorContents.newBuilder();
        Arrays.stream(ids).forEach(contents::addInt64Contents);
        return tensor("input_ids", "INT64", 1, ids.length).setContents(contents).build();
    }

    static ModelInferRequest.Builder greedy(int maxTokens) {
        return ModelInferRequest.newBuilder().setModelName("tiny").putParameters("max_tokens", integer(maxTokens))
                .putParameters("temperature", InferParameter.newBuilder().setDoubleParam(0).build());
    }

    private static ByteString littleEndianLongs(long... values) {
        ByteBuffer buffer = ByteBuffer.allocate(values.length * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asLongBuffer().put(values);
        return ByteString.copyFrom(buffer.array());
    }

    private static ByteString lengthPrefixed(String text) {
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        return ByteString.copyFrom(ByteBuffer.allocate(4 + utf8.length).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(utf8.length).put(utf8).array());
    }

    private static List<Integer> ints(List<Long> values) {
        return values.stream().map(Long::intValue).toList();
    }

    private static void assertStatus(Status.Code code, String messagePart, Executable call) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
        assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
        String description = e.getStatus().getDescription();
        assertTrue(description != null && description.contains(messagePart), description + " should mention " + messagePart);
    }

    @Test
    void healthAndMetadata() {
        assertTrue(kserve.serverLive(ServerLiveRequest.getDefaultInstance()).getLive());
        assertTrue(kserve.serverReady(ServerReadyRequest.getDefaultInstance()).getReady());
        ServerMetadataResponse server = kserve.serverMetadata(ServerMetadataRequest.getDefaultInstance());
        assertEquals("loraflow-serving", server.getName());
        assertEquals(given().get("/v2").then().extract().jsonPath().getString("version"), server.getVersion());

        assertTrue(kserve.modelReady(ModelReadyRequest.newBuilder().setName("tiny").build()).getReady());
        ModelMetadataResponse metadata = kserve.modelMetadata(ModelMetadataRequest.newBuilder().setName("tiny").build());
        JsonPath rest = given().get("/v2/models/tiny").then().statusCode(200).extract().jsonPath();
        assertEquals("tiny", metadata.getName());
        assertEquals(rest.getList("versions"), metadata.getVersionsList());
        assertEquals("onnxruntime_onnx", metadata.getPlatform());
        assertEquals(rest.getList("inputs.name"), metadata.getInputsList().stream().map(ModelMetadataResponse.TensorMetadata::getName).toList());
        assertEquals(rest.getList("outputs.name"), metadata.getOutputsList().stream().map(ModelMetadataResponse.TensorMetadata::getName).toList());
        assertEquals(List.of(1L, -1L), metadata.getInputs(0).getShapeList());
        String version = metadata.getVersions(0);
        assertTrue(kserve.modelReady(ModelReadyRequest.newBuilder().setName("tiny").setVersion(version).build()).getReady());
        assertEquals(version, kserve.modelMetadata(ModelMetadataRequest.newBuilder().setName("tiny").setVersion(version).build())
                .getVersions(0));
    }

    @Test
    void unknownModelsAndVersionsAreNotFound() {
        assertStatus(Status.Code.NOT_FOUND, "nope", () -> kserve.modelReady(ModelReadyRequest.newBuilder().setName("nope").build()));
        assertStatus(Status.Code.NOT_FOUND, "nope", () -> kserve.modelMetadata(ModelMetadataRequest.newBuilder().setName("nope").build()));
        assertStatus(Status.Code.NOT_FOUND, "version 999",
                () -> kserve.modelReady(ModelReadyRequest.newBuilder().setName("tiny").setVersion("999").build()));
        assertStatus(Status.Code.NOT_FOUND, "version 999",
                () -> kserve.modelMetadata(ModelMetadataRequest.newBuilder().setName("tiny").setVersion("999").build()));
        assertStatus(Status.Code.NOT_FOUND, "nope",
                () -> kserve.modelInfer(greedy(4).setModelName("nope").addInputs(ids(1, 2)).build()));
        assertStatus(Status.Code.NOT_FOUND, "version 999",
                () -> kserve.modelInfer(greedy(4).setModelVersion("999").addInputs(ids(1, 2)).build()));
    }

    @Test
    void typedTokenIdsGiveCoreGeneratorsAnswerAndTheRestEndpointsAnswer() {
        int[] prompt = {10, 20, 30, 40};
        GenerationResult expected = OpenAiApiTest.expected(prompt, 8);
        ModelInferResponse response = kserve.modelInfer(greedy(8).setId("g1").addInputs(ids(10, 20, 30, 40)).build());
        assertEquals("tiny", response.getModelName());
        assertEquals("g1", response.getId());
        assertEquals(0, response.getRawOutputContentsCount());
        ModelInferResponse.InferOutputTensor ids = response.getOutputs(0);
        assertEquals("output_ids", ids.getName());
        assertEquals("INT64", ids.getDatatype());
        assertEquals(List.of(1L, (long) expected.tokens().length), ids.getShapeList());
        assertEquals(OpenAiApiTest.list(expected.tokens()), ints(ids.getContents().getInt64ContentsList()));
        assertEquals("text_output", response.getOutputs(1).getName());
        assertEquals(OpenAiApiTest.text(expected.tokens()), response.getOutputs(1).getContents().getBytesContents(0).toStringUtf8());

        JsonPath rest = given().contentType("application/json").body("""
                {"id": "g1", "inputs": [{"name": "input_ids", "shape": [1, 4], "datatype": "INT64", "data": [10, 20, 30, 40]}],
                 "parameters": {"max_tokens": 8, "temperature": 0}}""").post("/v2/models/tiny/infer")
                .then().statusCode(200).extract().jsonPath();
        assertEquals(rest.getList("outputs[0].data", Integer.class), ints(ids.getContents().getInt64ContentsList()));
        assertEquals(rest.getString("outputs[1].data[0]"), response.getOutputs(1).getContents().getBytesContents(0).toStringUtf8());
        assertEquals(rest.getString("model_version"), response.getModelVersion());
        assertEquals(rest.getString("parameters.finish_reason"), response.getParametersOrThrow("finish_reason").getStringParam());
        assertEquals(rest.getLong("parameters.prompt_tokens"), response.getParametersOrThrow("prompt_tokens").getInt64Param());
        assertEquals(rest.getLong("parameters.completion_tokens"),
                response.getParametersOrThrow("completion_tokens").getInt64Param());

        InferTensorContents.Builder int32 = InferTensorContents.newBuilder();
        Arrays.stream(prompt).forEach(int32::addIntContents);
        ModelInferResponse fromInt32 = kserve.modelInfer(greedy(8)
                .addInputs(tensor("input_ids", "INT32", 4).setContents(int32)).build());
        assertEquals(ids.getContents(), fromInt32.getOutputs(0).getContents());
    }

    @Test
    void rawContentsInGiveRawContentsOut() {
        GenerationResult fromText = OpenAiApiTest.expected(OpenAiApiTest.bytes("Hi there"), 6);
        ModelInferResponse response = kserve.modelInfer(greedy(6).addInputs(tensor("text_input", "BYTES", 1))
                .addRawInputContents(lengthPrefixed("Hi there")).build());
        assertEquals(2, response.getRawOutputContentsCount());
        assertFalse(response.getOutputs(0).hasContents());
        ByteBuffer ids = response.getRawOutputContents(0).asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        long[] generated = new long[ids.remaining() / 8];
        ids.asLongBuffer().get(generated);
        assertEquals(OpenAiApiTest.list(fromText.tokens()), Arrays.stream(generated).mapToInt(id -> (int) id).boxed().toList());
        assertEquals(lengthPrefixed(OpenAiApiTest.text(fromText.tokens())), response.getRawOutputContents(1));

        String rest = given().contentType("application/json").body("""
                {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Hi there"]}],
                 "parameters": {"max_tokens": 6, "temperature": 0}}""").post("/v2/models/tiny/infer")
                .then().statusCode(200).extract().jsonPath().getString("outputs[1].data[0]");
        assertEquals(lengthPrefixed(rest), response.getRawOutputContents(1));

        ModelInferResponse rawIds = kserve.modelInfer(greedy(6).addInputs(tensor("input_ids", "INT64", 1, 8))
                .addRawInputContents(littleEndianLongs(Arrays.stream(OpenAiApiTest.bytes("Hi there")).asLongStream().toArray()))
                .build());
        assertEquals(response.getRawOutputContents(0), rawIds.getRawOutputContents(0));

        ModelInferResponse onlyIds = kserve.modelInfer(greedy(6).addInputs(ids(Arrays.stream(OpenAiApiTest.bytes("Hi there"))
                .asLongStream().toArray())).addOutputs(ModelInferRequest.InferRequestedOutputTensor.newBuilder()
                .setName("output_ids")).build());
        assertEquals(1, onlyIds.getOutputsCount());
        assertEquals(OpenAiApiTest.list(fromText.tokens()), ints(onlyIds.getOutputs(0).getContents().getInt64ContentsList()));
    }

    @Test
    void badTensorsShapesDatatypesAndParametersAreInvalidArguments() {
        assertStatus(Status.Code.INVALID_ARGUMENT, "exactly one tensor", () -> kserve.modelInfer(greedy(4).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "3 elements", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "INT64", 1, 3).setContents(InferTensorContents.newBuilder()
                        .addInt64Contents(1).addInt64Contents(2))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "shape [n] or [1, n]", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "INT64", 2, 1).setContents(InferTensorContents.newBuilder()
                        .addInt64Contents(1).addInt64Contents(2))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "bad shape", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "INT64", 1, -2).setContents(InferTensorContents.newBuilder()
                        .addInt64Contents(1))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "INT64 or INT32, got FP32", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "FP32", 1).setContents(InferTensorContents.newBuilder()
                        .addFp32Contents(1.5f))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "another contents field", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "INT64", 1).setContents(InferTensorContents.newBuilder()
                        .addIntContents(1))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "token id in [0, 257)", () -> kserve.modelInfer(greedy(4)
                .addInputs(ids(1, 999)).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "unknown input 'pixels'", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("pixels", "INT64", 1).setContents(InferTensorContents.newBuilder()
                        .addInt64Contents(1))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "unknown output 'logits'", () -> kserve.modelInfer(greedy(4)
                .addInputs(ids(1)).addOutputs(ModelInferRequest.InferRequestedOutputTensor.newBuilder().setName("logits"))
                .build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "max_tokens", () -> kserve.modelInfer(greedy(4)
                .putParameters("max_tokens", integer(-1)).addInputs(ids(1)).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "temperature", () -> kserve.modelInfer(greedy(4)
                .putParameters("temperature", InferParameter.newBuilder().setStringParam("hot").build()).addInputs(ids(1))
                .build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "not valid UTF-8", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("text_input", "BYTES", 1).setContents(InferTensorContents.newBuilder()
                        .addBytesContents(ByteString.copyFrom(new byte[] {(byte) 0xff, (byte) 0xfe})))).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "one per input", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "INT64", 1))
                .addRawInputContents(littleEndianLongs(1)).addRawInputContents(littleEndianLongs(2)).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "not a multiple of 8", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "INT64", 1)).addRawInputContents(ByteString.copyFrom(new byte[5])).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "4-byte length", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("text_input", "BYTES", 1)).addRawInputContents(ByteString.copyFrom(new byte[2])).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "more than the", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("text_input", "BYTES", 1))
                .addRawInputContents(ByteString.copyFrom(new byte[] {9, 0, 0, 0, 'x'})).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "one or the other", () -> kserve.modelInfer(greedy(4)
                .addInputs(ids(1)).addRawInputContents(littleEndianLongs(1)).build()));
        assertStatus(Status.Code.INVALID_ARGUMENT, "is FP32", () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("input_ids", "FP32", 1)).addRawInputContents(ByteString.copyFrom(new byte[4])).build()));
    }

    @Test
    void aMessageOverTheBodyLimitIsRefused() {
        ByteString tooLong = ByteString.copyFromUtf8("x".repeat(ServingProfile.MAX_BODY_BYTES + 1));
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> kserve.modelInfer(greedy(4)
                .addInputs(tensor("text_input", "BYTES", 1).setContents(InferTensorContents.newBuilder()
                        .addBytesContents(tooLong))).build()));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.getStatus().toString());
        assertTrue(kserve.serverLive(ServerLiveRequest.getDefaultInstance()).getLive());
    }
}
