package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.record;

import dev.loraflow.broker.LocalKafkaBroker;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.LocalArtifactStore;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * A real broker and a store holding two training jobs' merged models, job-a (tiny GPT-2 seed 51) and job-b
 * (seed 52), announced before the service starts; a memory budget that holds one of them open at a time.
 */
public class ManyModelsResource implements QuarkusTestResourceLifecycleManager {

    static final String JOB_A = "job-a";
    static final String JOB_B = "job-b";
    static final long SEED_A = 51;
    static final long SEED_B = 52;
    static final long SEED_A2 = 53;

    private LocalKafkaBroker broker;

    @Override
    public Map<String, String> start() {
        try {
            Path root = Files.createTempDirectory("loraflow-serving-many-");
            LocalArtifactStore store = new LocalArtifactStore(root.resolve("store"));
            Announcements.Release a = Announcements.release(store, SEED_A, root);
            Announcements.Release b = Announcements.release(store, SEED_B, root);
            Announcements.Release a2 = Announcements.release(store, SEED_A2, root);
            long graphBytes = Files.size(Path.of(URI.create(a.onnxUri())).resolve("model.onnx"));
            broker = LocalKafkaBroker.start(LocalKafkaBroker.Options.defaults());
            KafkaSetup.ensureTopics(broker.clientSettings(PlatformUsers.ADMIN), Map.of(Announcements.MODELS_TOPIC, 2));
            String topic = Announcements.MODELS_TOPIC;
            List<ProducerRecord<byte[], byte[]>> history = List.of(
                    record(topic, JOB_A, Announcements.event(JOB_A, 1, a).encode()),
                    record(topic, JOB_B, Announcements.event(JOB_B, 1, b).encode()));
            Announcements.recordOutcomes(store, history);
            Announcements.publish(broker.clientSettings(PlatformUsers.MERGER), history);
            Map<String, String> config = new HashMap<>(broker.serviceConfig(PlatformUsers.SERVING));
            config.putAll(Map.of("loraflow.store.root", store.root().toString(),
                    // One graph fits, two do not.
                    "loraflow.serving.models.memory-budget", Long.toString(graphBytes * 3 / 2),
                    "loraflow.test.release-a2", a2.encode()));
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
