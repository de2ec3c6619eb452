package dev.loraflow.merger;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.service.support.ServiceHealth;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;

/**
 * The merge loop's thread ended by an Error (an out-of-memory, injected after an export): the service says
 * it is not live, so Kubernetes restarts it, rather than stay up merging nothing.
 */
@QuarkusTest
@QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = @ResourceArg(name = "user", value = PlatformUsers.MERGER))
@TestProfile(LoopDeathTest.Profile.class)
class LoopDeathTest {

    public static class Profile extends MergerProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> overrides = new HashMap<>(super.getConfigOverrides());
            overrides.put("loraflow.merger.fault", "out-of-memory-after-export:j-oom");
            return overrides;
        }
    }

    @Test
    void aLoopThreadEndedByAnErrorMakesTheServiceNotLive() throws Exception {
        ServiceHealth.awaitLoopRunning(Duration.ofMinutes(1));

        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).targetModules("c_attn").build();
        CausalLanguageModel model = CausalLanguageModel.create(MergerProfile.CONFIG,
                RandomModel.initialWeights(MergerProfile.CONFIG, 1), lora, 3);
        Path staging = Files.createTempDirectory(MergerProfile.ROOT, "adapter-");
        model.toPeftAdapter().write(staging, DType.F32);
        ArtifactStore.Artifact adapter = new LocalArtifactStore(MergerProfile.ROOT.resolve("store")).putDirectory(staging);
        CheckpointEvent checkpoint = new CheckpointEvent("j-oom", 2, 1.0, true, adapter.uri().toString(), adapter.sha256(),
                MergerProfile.BASE, ModelDigest.of(MergerProfile.ROOT.resolve("models").resolve(MergerProfile.BASE)),
                new ObjectMapper().createObjectNode().put("r", 2), 2, 0, 0, 2, new CheckpointEvent.Counts(2, 2, 0, 0));
        Properties config = MergerKafkaTest.client(PlatformUsers.TRAINER);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            producer.send(new ProducerRecord<>("loraflow.adapter.checkpoints", "j-oom".getBytes(StandardCharsets.UTF_8),
                    checkpoint.encode())).get();
        }

        ServiceHealth.awaitLoopDead(Duration.ofMinutes(2));
    }
}
