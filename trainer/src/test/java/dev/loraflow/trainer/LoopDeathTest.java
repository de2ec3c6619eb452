package dev.loraflow.trainer;

import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.service.support.ServiceHealth;
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
        ServiceHealth.awaitLoopRunning(Duration.ofMinutes(1));
        Properties config = TrainerKafkaTest.client(PlatformUsers.PRODUCER);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            byte[] key = "doomed".getBytes(StandardCharsets.UTF_8);
            producer.send(new ProducerRecord<>("loraflow.training.jobs", key,
                    TrainingFixtures.job("doomed", 2, 0).toJson().toString().getBytes(StandardCharsets.UTF_8))).get();
            producer.send(new ProducerRecord<>("loraflow.training.batches", key,
                    TrainingBatch.encode("doomed", 0, TrainingFixtures.examples(8, 9)))).get();
        }

        ServiceHealth.awaitLoopDead(Duration.ofMinutes(1));
    }
}
