package dev.loraflow.serving.messaging;

import dev.loraflow.broker.LocalKafkaBroker;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.serving.TemporaryDirectoryResource;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * What the tests of serving's followers start from: a real broker that serving signs in to as user
 * {@code serving}, a local store in a fresh directory ({@code loraflow.store.root}), and whatever history a
 * subclass publishes there before the service starts ({@link #prepare}).
 */
abstract class AnnouncingResource extends TemporaryDirectoryResource {

    private LocalKafkaBroker broker;

    /**
     * Fills the store below {@code root} and publishes the history ({@link #publishModels}, {@link #publishCheckpoints});
     * returns the service's configuration beyond the broker and the store.
     */
    abstract Map<String, String> prepare(Path root, LocalArtifactStore store) throws IOException;

    @Override
    protected Map<String, String> start(Path root) throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(root.resolve("store"));
        broker = LocalKafkaBroker.start(LocalKafkaBroker.Options.defaults());
        Map<String, String> config = new HashMap<>(broker.serviceConfig(PlatformUsers.SERVING));
        config.put("loraflow.store.root", store.root().toString());
        config.putAll(prepare(root, store));
        return config;
    }

    /** As the merger announces: each event's outcome recorded in the store first, then the events, as user merger. */
    void publishModels(LocalArtifactStore store, List<ProducerRecord<byte[], byte[]>> history) throws IOException {
        KafkaSetup.ensureTopics(broker.clientSettings(PlatformUsers.ADMIN), Map.of(Announcements.MODELS_TOPIC, 2));
        Announcements.recordOutcomes(store, history);
        Announcements.publish(broker.clientSettings(PlatformUsers.MERGER), history);
    }

    /** As the trainer announces its checkpoints, as user trainer. */
    void publishCheckpoints(List<ProducerRecord<byte[], byte[]>> history) {
        KafkaSetup.ensureTopics(broker.clientSettings(PlatformUsers.ADMIN), Map.of(Announcements.CHECKPOINTS_TOPIC, 2));
        Announcements.publish(broker.clientSettings(PlatformUsers.TRAINER), history);
    }

    @Override
    public void stop() {
        if (broker != null) {
            broker.close();
        }
        super.stop();
    }
}
