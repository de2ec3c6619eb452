package dev.loraflow.merger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import dev.loraflow.s3server.S3ServerTestResource;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * The merger configured with {@code loraflow.store.uri=s3://…} on a real S3 API server: it reads the trainer's
 * adapter from the bucket and writes the merged model, the ONNX graph and its outcome record there — and
 * nothing to a local store.
 */
@QuarkusTest
// The module's broker, declared as its other tests declare it (Quarkus starts one for all of them).
@QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = @ResourceArg(name = "user", value = PlatformUsers.MERGER))
@QuarkusTestResource(value = S3ServerTestResource.class, restrictToAnnotatedClass = true,
        initArgs = @ResourceArg(name = "prefix", value = "merger-test"))
@TestProfile(MergerS3Profile.class)
class MergerS3Test {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static ArtifactStore store() throws Exception {
        return ArtifactStores.open(ConfigProvider.getConfig().getValue("loraflow.store.uri", String.class));
    }

    private static Properties client(String user) {
        return MergerKafkaTest.client(user);
    }

    @Test
    void aCheckpointInTheBucketBecomesAVerifiedModelInTheBucket() throws Exception {
        ArtifactStore store = store();
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).targetModules("c_attn", "c_fc").build();
        CausalLanguageModel model = CausalLanguageModel.create(MergerProfile.CONFIG,
                RandomModel.initialWeights(MergerProfile.CONFIG, 1), lora, 5);
        Rng rng = new Rng(5);
        for (LoRALinear module : model.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.5f);
            }
        }
        Path staging = Files.createTempDirectory(MergerProfile.ROOT, "s3-adapter-");
        model.toPeftAdapter().write(staging, DType.F32);
        ArtifactStore.Artifact adapter = store.putDirectory(staging);
        assertEquals("s3", adapter.uri().getScheme());
        Path base = MergerProfile.ROOT.resolve("models").resolve(MergerProfile.BASE);
        CheckpointEvent checkpoint = new CheckpointEvent("j-s3", 3, 1.5, true, adapter.uri().toString(), adapter.sha256(),
                MergerProfile.BASE, ModelDigest.of(base), JSON.createObjectNode().put("r", 2), 3, 0, 0, 3,
                new CheckpointEvent.Counts(3, 3, 0, 0));

        Properties producerConfig = client(PlatformUsers.TRAINER);
        producerConfig.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerConfig, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            producer.send(new ProducerRecord<>("loraflow.adapter.checkpoints", "j-s3".getBytes(StandardCharsets.UTF_8),
                    checkpoint.encode())).get();
        }

        MergedModelEvent merged = awaitMerged("j-s3");
        assertEquals(3, merged.modelVersion());
        assertTrue(merged.mergedUri().startsWith("s3://") && merged.onnxUri().startsWith("s3://"), merged.toString());
        assertEquals(Optional.empty(), MergeOutcomes.mismatch(store, merged), "the outcome record is in the bucket");
        Path onnx = store().open(URI.create(merged.onnxUri()), merged.onnxSha256());
        assertEquals(merged.onnxFileSha256(), Sha256.of(onnx.resolve(merged.onnxFile())));
        Path mergedModel = store().open(URI.create(merged.mergedUri()), merged.mergedSha256());
        assertEquals(MergerProfile.CONFIG, CausalLanguageModel.load(mergedModel, null, 0).config());
        assertFalse(Files.exists(MergerProfile.ROOT.resolve("s3-test-local-store")), "nothing went to a local store");
    }

    private MergedModelEvent awaitMerged(String job) throws Exception {
        Properties config = client(PlatformUsers.ADMIN);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "test-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            consumer.subscribe(List.of("loraflow.models.merged"));
            long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
            while (true) {
                assertTrue(System.nanoTime() < deadline, "no merged model for " + job);
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    MergedModelEvent event = MergedModelEvent.parse(record.value());
                    if (event.model().equals(job)) {
                        return event;
                    }
                }
            }
        }
    }
}
