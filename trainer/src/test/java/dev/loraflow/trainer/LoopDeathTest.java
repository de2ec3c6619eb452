package dev.loraflow.trainer;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.trainer.service.TrainingFixtures;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;

/**
 * The training loop's thread ended by an Error (an out-of-memory, injected mid-step): the service says it is
 * not live, so Kubernetes restarts it, rather than stay up with nothing training.
 */
@QuarkusTest
@QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = @ResourceArg(name = "user", value = PlatformUsers.TRAINER))
@TestProfile(LoopDeathTest.Profile.class)
class LoopDeathTest {

    public static class Profile extends TrainerProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> overrides = new HashMap<>(super.getConfigOverrides());
            overrides.put("loraflow.trainer.fault", "out-of-memory:1");
            return overrides;
        }
    }

    @Test
    void aLoopThreadEndedByAnErrorMakesTheServiceNotLive() throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
        while (given().get("/q/health/ready").statusCode() != 200) {
            assertTrue(System.nanoTime() < deadline, "the trainer never became ready");
            Thread.sleep(200);
        }
        given().get("/q/health/live").then().statusCode(200).body("checks.find { it.name == 'loop' }.status", equalTo("UP"));
        Properties config = TrainerKafkaTest.client(PlatformUsers.PRODUCER);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            byte[] key = "doomed".getBytes(StandardCharsets.UTF_8);
            producer.send(new ProducerRecord<>("loraflow.training.jobs", key,
                    TrainingFixtures.job("doomed", 2, 0).toJson().toString().getBytes(StandardCharsets.UTF_8))).get();
            producer.send(new ProducerRecord<>("loraflow.training.batches", key,
                    TrainingBatch.encode("doomed", 0, TrainingFixtures.examples(8, 9)))).get();
        }

        deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
        while (given().get("/q/health/live").statusCode() != 503) {
            assertTrue(System.nanoTime() < deadline, "liveness stayed UP after the loop's thread died");
            Thread.sleep(200);
        }
        given().get("/q/health/live").then().statusCode(503).body("checks.find { it.name == 'loop' }.status",
                equalTo("DOWN"));
        given().get("/q/health/ready").then().statusCode(503);
    }
}
