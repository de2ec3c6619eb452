package dev.loraflow.serving.rest;

import dev.loraflow.serving.TemporaryDirectoryResource;
import dev.loraflow.serving.service.Serving;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.util.concurrent.ListenableFuture;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.inference.TinyModels;
import dev.loraflow.serving.kserve.grpc.GRPCInferenceServiceGrpc;
import dev.loraflow.serving.kserve.grpc.ModelInferRequest;
import dev.loraflow.serving.kserve.grpc.ModelInferResponse;
import dev.loraflow.serving.kserve.grpc.ServerLiveRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/**
 * Clients that go away and clients with keys, on a model whose answers are long: a tiny GPT-2 with a
 * context of 4096 and no tokenizer, so nothing stops a generation before max_tokens (4000 steps, seconds).
 */
@QuarkusTest
@TestProfile(ClientLimitsTest.LongAnswers.class)
class ClientLimitsTest {

    static final String KEY_A = "key-a";
    static final String KEY_B = "key-b";
    static final String LONG = "{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 4000, \"temperature\": 0%s}";
    static final Duration QUICKLY = Duration.ofSeconds(10);

    public static class LongAnswers implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("loraflow.api-keys", ServingProfile.API_KEY, "loraflow.serving.model.name", "tiny",
                    "loraflow.serving.intra-op-threads", "1", "loraflow.serving.inference-keys", KEY_A + "," + KEY_B,
                    "loraflow.serving.inference-key-concurrency", "1");
        }

        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(LongModel.class));
        }
    }

    /** The tiny GPT-2 with a context of 4096, exported without its tokenizer files. */
    public static class LongModel extends TemporaryDirectoryResource {
        @Override
        protected Map<String, String> start(Path dir) throws IOException {
            Gpt2Config config = new Gpt2Config(ByteLevelTokenizerJson.VOCAB_SIZE, 4096, 32, 2, 4, 64, 1e-5);
            Path onnx = TinyModels.export(TinyModels.model(config, TinyModelResource.SEED_A),
                    TinyModels.weights(config, TinyModelResource.SEED_A), dir);
            Files.delete(dir.resolve(Tokenizer.FILE_NAME));
            Files.delete(dir.resolve(Tokenizer.CONFIG_FILE_NAME));
            return Map.of("loraflow.serving.model.path", onnx.toString());
        }
    }

    @Inject
    Serving serving;
    @Inject
    MeterRegistry meters;

    private double requests(String outcome) {
        return requests("openai_completions", outcome);
    }

    private double requests(String api, String outcome) {
        return meters.counter("loraflow.requests", "api", api, "outcome", outcome).count();
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + QUICKLY.toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what + " within " + QUICKLY);
            Thread.sleep(10);
        }
    }

    private boolean engineIdle() {
        return serving.engine().activeSequences() == 0 && serving.engine().queueDepth() == 0;
    }

    @Test
    void aStreamingClientThatLeavesIsRemovedFromTheEngine() throws Exception {
        await(this::engineIdle, "an idle engine");
        double cancelled = requests("cancelled");
        double completed = requests("completed");
        try (RawHttp client = RawHttp.post("/v1/completions", Map.of("X-API-Key", KEY_A),
                LONG.formatted(", \"stream\": true"))) {
            assertEquals(200, client.status());
            client.lineStartingWith("data: ");
        }
        await(this::engineIdle, "the generation leaving the engine");
        await(() -> requests("cancelled") == cancelled + 1, "the generation counted as cancelled");
        assertEquals(completed, requests("completed"), "the generation did not run to its end");
    }

    @Test
    void aWaitingClientThatLeavesIsRemovedFromTheEngine() throws Exception {
        await(this::engineIdle, "an idle engine");
        double cancelled = requests("cancelled");
        double completed = requests("completed");
        try (RawHttp client = RawHttp.post("/v1/completions", Map.of("X-API-Key", KEY_A), LONG.formatted(""))) {
            await(() -> serving.engine().activeSequences() == 1, "the generation running");
        }
        await(this::engineIdle, "the generation leaving the engine");
        await(() -> requests("cancelled") == cancelled + 1, "the generation counted as cancelled");
        assertEquals(completed, requests("completed"), "the generation did not run to its end");
    }

    @Test
    void aKServeRestClientThatLeavesIsRemovedFromTheEngine() throws Exception {
        await(this::engineIdle, "an idle engine");
        double cancelled = requests("kserve_v2", "cancelled");
        double completed = requests("kserve_v2", "completed");
        String body = "{\"inputs\": [{\"name\": \"input_ids\", \"datatype\": \"INT64\", \"shape\": [1, 3],"
                + " \"data\": [1, 2, 3]}], \"parameters\": {\"max_tokens\": 4000, \"temperature\": 0}}";
        try (RawHttp client = RawHttp.post("/v2/models/tiny/infer", Map.of("X-API-Key", KEY_A), body)) {
            await(() -> serving.engine().activeSequences() == 1, "the generation running");
        }
        await(this::engineIdle, "the generation leaving the engine");
        await(() -> requests("kserve_v2", "cancelled") == cancelled + 1, "the generation counted as cancelled");
        assertEquals(completed, requests("kserve_v2", "completed"), "the generation did not run to its end");
    }

    @Test
    void aGrpcClientThatCancelsIsRemovedFromTheEngine() throws Exception {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", KServeGrpcTest.grpcPort()).usePlaintext().build();
        try {
            await(this::engineIdle, "an idle engine");
            double cancelled = requests("kserve_v2_grpc", "cancelled");
            double completed = requests("kserve_v2_grpc", "completed");
            ListenableFuture<ModelInferResponse> answer = GRPCInferenceServiceGrpc.newFutureStub(channel)
                    .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(key(KEY_A)))
                    .modelInfer(KServeGrpcTest.greedy(4000).addInputs(KServeGrpcTest.ids(1, 2, 3)).build());
            await(() -> serving.engine().activeSequences() == 1, "the generation running");
            assertTrue(answer.cancel(true), "the call was still running");
            await(this::engineIdle, "the generation leaving the engine");
            await(() -> requests("kserve_v2_grpc", "cancelled") == cancelled + 1, "the generation counted as cancelled");
            assertEquals(completed, requests("kserve_v2_grpc", "completed"), "the generation did not run to its end");
        } finally {
            channel.shutdownNow();
        }
    }

    private static Metadata key(String key) {
        Metadata metadata = new Metadata();
        metadata.put(Metadata.Key.of("x-api-key", Metadata.ASCII_STRING_MARSHALLER), key);
        return metadata;
    }

    @Test
    void inferenceNeedsAKeyAndEachKeyHasItsPlaces() throws Exception {
        String shortRequest = "{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 1}";
        given().contentType("application/json").body(shortRequest).post("/v1/completions").then().statusCode(401)
                .body("error.code", equalTo("invalid_api_key")).body("error.type", equalTo("authentication_error"));
        given().get("/v1/models").then().statusCode(401);
        given().header("X-API-Key", KEY_B).get("/v1/models").then().statusCode(200);
        given().get("/v2/health/ready").then().statusCode(200);
        // Refused from the headers, the announced body never sent.
        try (RawHttp refused = RawHttp.send("POST", "/v1/completions", Map.of("Content-Type", "application/json"), 50_000,
                new byte[0], Duration.ofSeconds(30))) {
            assertEquals(401, refused.status());
        }

        await(this::engineIdle, "an idle engine");
        try (RawHttp first = RawHttp.post("/v1/completions", Map.of("Authorization", "Bearer " + KEY_A),
                LONG.formatted(", \"stream\": true"))) {
            assertEquals(200, first.status());
            first.lineStartingWith("data: ");
            given().header("X-API-Key", KEY_A).contentType("application/json").body(shortRequest).post("/v1/completions")
                    .then().statusCode(429).body("error.code", equalTo("concurrency_limit_exceeded"))
                    .body("error.type", equalTo("rate_limit_error"));
            given().header("X-API-Key", KEY_B).contentType("application/json").body(shortRequest).post("/v1/completions")
                    .then().statusCode(200);
        }
        // The place comes back when the first client leaves.
        await(() -> given().header("X-API-Key", KEY_A).contentType("application/json").body(shortRequest)
                .post("/v1/completions").statusCode() == 200, "key A's place back");
    }

    @Test
    void grpcInferenceNeedsAKeyToo() {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", KServeGrpcTest.grpcPort()).usePlaintext().build();
        try {
            GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub kserve = GRPCInferenceServiceGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(60, TimeUnit.SECONDS);
            ModelInferRequest request = KServeGrpcTest.greedy(2).addInputs(KServeGrpcTest.ids(1, 2, 3)).build();
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> kserve.modelInfer(request));
            assertEquals(Status.Code.UNAUTHENTICATED, refused.getStatus().getCode());
            assertTrue(kserve.serverLive(ServerLiveRequest.getDefaultInstance()).getLive(), "health stays open");
            ModelInferResponse answer = kserve.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(key(KEY_B)))
                    .modelInfer(request);
            assertEquals(2, answer.getOutputs(0).getContents().getInt64ContentsCount());
        } finally {
            channel.shutdownNow();
        }
    }
}
