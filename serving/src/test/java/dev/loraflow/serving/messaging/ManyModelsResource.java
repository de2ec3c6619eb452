package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.record;

import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A real broker and a store holding two training jobs' merged models, job-a (tiny GPT-2 seed 51) and job-b
 * (seed 52), announced before the service starts; a memory budget that holds one of them open at a time.
 */
public class ManyModelsResource extends AnnouncingResource {

    static final String JOB_A = "job-a";
    static final String JOB_B = "job-b";
    static final long SEED_A = 51;
    static final long SEED_B = 52;
    static final long SEED_A2 = 53;

    @Override
    Map<String, String> prepare(Path root, LocalArtifactStore store) throws IOException {
        Announcements.Release a = Announcements.release(store, SEED_A, root);
        Announcements.Release b = Announcements.release(store, SEED_B, root);
        Announcements.Release a2 = Announcements.release(store, SEED_A2, root);
        long graphBytes = Files.size(Path.of(URI.create(a.onnxUri())).resolve("model.onnx"));
        String topic = Announcements.MODELS_TOPIC;
        publishModels(store, List.of(
                record(topic, JOB_A, Announcements.event(JOB_A, 1, a).encode()),
                record(topic, JOB_B, Announcements.event(JOB_B, 1, b).encode())));
        // One graph fits, two do not.
        return Map.of("loraflow.serving.models.memory-budget", Long.toString(graphBytes * 3 / 2),
                "loraflow.test.release-a2", a2.encode());
    }
}
