package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.record;

import dev.loraflow.broker.LocalKafkaBroker;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.LocalArtifactStore;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * A real broker, a store with two tiny models A and B, and a history published before the service
 * starts: tiny-job versions 3 (A), 7 (B), 5 (A) and 9 (its graph's SHA-256 wrong), another model's
 * version 99 and a malformed record. Start-up discovery should serve version 7.
 */
public class AnnouncedModelsResource implements QuarkusTestResourceLifecycleManager {

    static final String MODEL = "tiny-job";
    static final long SEED_A = 41;
    static final long SEED_B = 42;

    private LocalKafkaBroker broker;

    @Override
    public Map<String, String> start() {
        try {
            Path root = Files.createTempDirectory("loraflow-serving-follow-");
            LocalArtifactStore store = new LocalArtifactStore(root.resolve("store"));
            Announcements.Release a = Announcements.release(store, SEED_A, root);
            Announcements.Release b = Announcements.release(store, SEED_B, root);
            broker = LocalKafkaBroker.start(LocalKafkaBroker.Options.defaults());
            KafkaSetup.ensureTopics(broker.clientSettings(PlatformUsers.ADMIN), Map.of(Announcements.MODELS_TOPIC, 2));
            Announcements.Release wrongFileSha = new Announcements.Release(a.onnxUri(), a.onnxSha256(),
                    Announcements.SHA_ZERO, a.mergedUri(), a.mergedSha256());
            String topic = Announcements.MODELS_TOPIC;
            List<ProducerRecord<byte[], byte[]>> history = List.of(
                    record(topic, MODEL, Announcements.event(MODEL, 3, a).encode()),
                    record(topic, MODEL, Announcements.event(MODEL, 7, b).encode()),
                    record(topic, MODEL, Announcements.event(MODEL, 5, a).encode()),
                    record(topic, MODEL, Announcements.event(MODEL, 9, wrongFileSha).encode()),
                    record(topic, MODEL, "{\"schema\": \"loraflow.models.merged\", \"version\": 1"),
                    record(topic, "other-job", Announcements.event("other-job", 99, a).encode()));
            // As the merger announces: its outcome in the store first, then the event, as user merger.
            Announcements.recordOutcomes(store, history);
            Announcements.publish(broker.clientSettings(PlatformUsers.MERGER), history);
            Map<String, String> config = new HashMap<>(broker.serviceConfig(PlatformUsers.SERVING));
            config.putAll(Map.of("loraflow.store.root", store.root().toString(),
                    "loraflow.test.release-a", a.encode(), "loraflow.test.release-b", b.encode()));
            return config;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void stop() {
        if (broker != null) {
            broker.close();
        }
    }
}
