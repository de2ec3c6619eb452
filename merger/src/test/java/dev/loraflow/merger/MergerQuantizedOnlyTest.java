package dev.loraflow.merger;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.broker.TopicReader;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.platform.events.MergeFailureEvent;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.events.MergedModelEvent;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.response.Response;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * The merger publishing an int4 graph alone, against a real Kafka broker and ONNX Runtime: a checkpoint whose int4
 * graph keeps its held-out loss is announced with that graph as the one to serve (no F32 graph written); one whose
 * loss rises is not announced at all, its failure event carrying the measured figures.
 */
@QuarkusTest
@QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = @ResourceArg(name = "user", value = PlatformUsers.MERGER))
@TestProfile(MergerQuantizedOnlyProfile.class)
class MergerQuantizedOnlyTest {

    @Test
    void anInt4GraphWithinItsLossBoundIsTheServedGraphAndOneBeyondItAnnouncesNoModel() throws Exception {
        int announced = 0;
        int refused = 0;
        // Adapters of different seeds: int4 rounding raises the held-out loss of some and lowers it for others
        // (the bound is 0: any rise refuses); each outcome must match its own measured figures.
        for (long seed = 21; seed <= 24; seed++) {
            String job = "j-int4-" + seed;
            MergerKafkaTest.send(MergerKafkaTest.checkpoint(job, 2, true, MergerKafkaTest.storeAdapter(seed)));
            if (awaitOutcome(job, 2).equals("merged")) {
                assertServedInt4(MergerKafkaTest.mergedEvents(job, 1).getFirst());
                announced++;
            } else {
                MergeFailureEvent failure = MergerKafkaTest.failures(job, 1).getFirst();
                assertEquals("verification_failed", failure.reason(), failure.toString());
                assertTrue(failure.message().contains("int4 graph") && failure.message().contains("held-out loss")
                        && failure.message().contains("bound +0.0 %"), failure.message());
                assertTrue(Double.isFinite(failure.maxAbsLogitError()) && failure.maxAbsLogitError() > 0, failure.toString());
                refused++;
            }
        }
        assertTrue(announced > 0 && refused > 0, "both outcomes seen: " + announced + " announced, " + refused + " refused");
        long events = readMergedTopic().stream()
                .filter(value -> new String(value, StandardCharsets.UTF_8).contains("\"model\":\"j-int4-")).count();
        assertEquals(announced, events, "no merged event for a refused model");
    }

    private static void assertServedInt4(MergedModelEvent merged) throws Exception {
        assertEquals("int4", merged.onnxPrecision(), merged.toString());
        assertEquals(1, merged.quantized().size(), merged.toString());
        MergedModelEvent.QuantizedGraph int4 = merged.quantized().getFirst();
        assertTrue(int4.published() && int4.lossIncrease() <= 0, int4.toString());
        assertEquals(int4.onnxUri(), merged.onnxUri(), "the event's graph is the int4 one");
        assertEquals(int4.onnxFileSha256(), merged.onnxFileSha256());
        assertTrue(merged.verification().passed() && Double.isNaN(merged.verification().tolerance())
                && merged.verification().maxAbsLogitError() == int4.maxAbsLogitError(), merged.toString());
        assertEquals(Optional.empty(), MergeOutcomes.mismatch(MergerKafkaTest.store(), merged));
        assertEquals(merged, MergedModelEvent.parse(merged.encode()), "onnx.precision survives the topic");

        Path onnx = MergerKafkaTest.store().open(URI.create(merged.onnxUri()), merged.onnxSha256());
        Path graph = onnx.resolve(merged.onnxFile());
        assertEquals(merged.onnxFileSha256(), Sha256.of(graph));
        assertTrue(new String(Files.readAllBytes(graph), StandardCharsets.ISO_8859_1).contains("MatMulNBits"),
                "the served graph's linears are int4 blocks");
        assertEquals("base", merged.dtype(), "the merged model in the base's dtype");
    }

    /** merged or failed, from GET /merges/JOB/STEP once the merger has stored the outcome. */
    private static String awaitOutcome(String job, long step) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        while (true) {
            Response response = given().get("/merges/" + job + "/" + step);
            if (response.statusCode() == 200) {
                return response.jsonPath().getString("status");
            }
            assertTrue(System.nanoTime() < deadline, "no outcome for " + job);
            Thread.sleep(100);
        }
    }

    private static List<byte[]> readMergedTopic() throws Exception {
        return TopicReader.readFor(MergerKafkaTest.client(PlatformUsers.ADMIN),
                "loraflow.models.merged", value -> value, Duration.ofSeconds(2));
    }
}
