package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.serving.kserve.grpc.GRPCInferenceServiceGrpc;
import dev.loraflow.serving.kserve.grpc.InferParameter;
import dev.loraflow.serving.kserve.grpc.InferTensorContents;
import dev.loraflow.serving.kserve.grpc.ModelInferRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.response.Response;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * A batch of one and a queue of one: a burst of clients gets 429 with Retry-After (RESOURCE_EXHAUSTED over
 * gRPC), and the rest their answers.
 */
@QuarkusTest
@TestProfile(OverloadTest.TinyQueue.class)
class OverloadTest {

    public static class TinyQueue extends ServingProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> overrides = new HashMap<>(super.getConfigOverrides());
            overrides.put("loraflow.serving.max-batch-size", "1");
            overrides.put("loraflow.serving.queue-capacity", "1");
            overrides.put("loraflow.serving.retry-after-seconds", "2");
            return overrides;
        }
    }

    @Test
    void aFullQueueAnswers429WithRetryAfter() throws Exception {
        ExecutorService clients = Executors.newFixedThreadPool(16);
        try {
            List<Callable<Response>> burst = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                burst.add(() -> given().contentType("application/json")
                        .body("{\"model\": \"tiny\", \"prompt\": [1, 2, 3], \"max_tokens\": 60, \"temperature\": 0}")
                        .post("/v1/completions"));
            }
            int overloaded = 0;
            int answered = 0;
            for (Future<Response> future : clients.invokeAll(burst)) {
                Response response = future.get();
                if (response.statusCode() == 429) {
                    overloaded++;
                    assertEquals("2", response.header("Retry-After"));
                    assertEquals("rate_limit_error", response.jsonPath().getString("error.type"));
                    assertEquals("server_overloaded", response.jsonPath().getString("error.code"));
                } else {
                    assertEquals(200, response.statusCode(), response.asString());
                    answered++;
                }
            }
            assertTrue(overloaded > 0, "16 clients at once against a batch of 1 and a queue of 1");
            assertTrue(answered > 0);
        } finally {
            clients.shutdownNow();
        }
    }

    @Test
    void aFullQueueIsResourceExhaustedOverGrpc() throws Exception {
        int port = ConfigProvider.getConfig().getValue("quarkus.grpc.server.test-port", Integer.class);
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", port).usePlaintext().build();
        ExecutorService clients = Executors.newFixedThreadPool(16);
        try {
            var kserve = GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(120, TimeUnit.SECONDS);
            ModelInferRequest request = ModelInferRequest.newBuilder().setModelName("tiny")
                    .addInputs(ModelInferRequest.InferInputTensor.newBuilder().setName("input_ids").setDatatype("INT64")
                            .addShape(3).setContents(InferTensorContents.newBuilder().addInt64Contents(1)
                                    .addInt64Contents(2).addInt64Contents(3)))
                    .putParameters("max_tokens", InferParameter.newBuilder().setInt64Param(60).build())
                    .putParameters("temperature", InferParameter.newBuilder().setInt64Param(0).build()).build();
            List<Callable<Status.Code>> burst = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                burst.add(() -> {
                    try {
                        assertEquals(60, kserve.modelInfer(request).getOutputs(0).getShape(1));
                        return Status.Code.OK;
                    } catch (StatusRuntimeException e) {
                        return e.getStatus().getCode();
                    }
                });
            }
            Map<Status.Code, Integer> codes = new HashMap<>();
            for (Future<Status.Code> future : clients.invokeAll(burst)) {
                codes.merge(future.get(), 1, Integer::sum);
            }
            assertEquals(Set.of(Status.Code.OK, Status.Code.RESOURCE_EXHAUSTED), codes.keySet(), codes.toString());
        } finally {
            clients.shutdownNow();
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
