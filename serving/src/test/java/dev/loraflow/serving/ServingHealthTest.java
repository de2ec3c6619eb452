package dev.loraflow.serving;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.serving.kserve.grpc.GRPCInferenceServiceGrpc;
import dev.loraflow.serving.kserve.grpc.InferTensorContents;
import dev.loraflow.serving.kserve.grpc.ModelInferRequest;
import dev.loraflow.serving.kserve.grpc.ModelReadyRequest;
import dev.loraflow.serving.kserve.grpc.ServerLiveRequest;
import dev.loraflow.serving.kserve.grpc.ServerReadyRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.test.junit.QuarkusTest;
import java.util.concurrent.TimeUnit;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/** Without a model configured the service is live but not ready, and generation answers 503 (UNAVAILABLE over gRPC). */
@QuarkusTest
class ServingHealthTest {

    @Test
    void liveButNotReadyWithoutAModel() {
        given().when().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
        given().when().get("/q/health/ready").then().statusCode(503).body("status", equalTo("DOWN"));
        given().when().get("/v2/health/ready").then().statusCode(503).body("ready", equalTo(false));
        given().contentType("application/json").body("{\"model\": \"loraflow\", \"prompt\": \"x\"}")
                .post("/v1/completions").then().statusCode(503).body("error.code", equalTo("model_not_loaded"));
    }

    @Test
    void grpcIsLiveButNotReadyWithoutAModel() throws InterruptedException {
        int port = ConfigProvider.getConfig().getValue("quarkus.grpc.server.test-port", Integer.class);
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", port).usePlaintext().build();
        try {
            var kserve = GRPCInferenceServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
            assertTrue(kserve.serverLive(ServerLiveRequest.getDefaultInstance()).getLive());
            assertFalse(kserve.serverReady(ServerReadyRequest.getDefaultInstance()).getReady());
            StatusRuntimeException ready = assertThrows(StatusRuntimeException.class,
                    () -> kserve.modelReady(ModelReadyRequest.newBuilder().setName("loraflow").build()));
            assertEquals(Status.Code.UNAVAILABLE, ready.getStatus().getCode());
            assertEquals("no model is loaded yet", ready.getStatus().getDescription());
            StatusRuntimeException infer = assertThrows(StatusRuntimeException.class, () -> kserve.modelInfer(
                    ModelInferRequest.newBuilder().setModelName("loraflow").addInputs(ModelInferRequest.InferInputTensor
                            .newBuilder().setName("input_ids").setDatatype("INT64").addShape(1)
                            .setContents(InferTensorContents.newBuilder().addInt64Contents(1))).build()));
            assertEquals(Status.Code.UNAVAILABLE, infer.getStatus().getCode());
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
