package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.record;

import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.onnx.WeightQuantization;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A real broker, a store with two tiny models A and B, and a history published before the service
 * starts: tiny-job versions 3 (A), 7 (B), 5 (A) and 9 (its graph's SHA-256 wrong), another model's
 * version 99 and a malformed record. Start-up discovery should serve version 7.
 */
public class AnnouncedModelsResource extends AnnouncingResource {

    static final String MODEL = "tiny-job";
    static final long SEED_A = 41;
    static final long SEED_B = 42;

    @Override
    Map<String, String> prepare(Path root, LocalArtifactStore store) throws IOException {
        Announcements.Release a = Announcements.release(store, SEED_A, root);
        Announcements.Release b = Announcements.release(store, SEED_B, root);
        Announcements.Release wrongFileSha = new Announcements.Release(a.onnxUri(), a.onnxSha256(),
                Announcements.SHA_ZERO, a.mergedUri(), a.mergedSha256());
        String topic = Announcements.MODELS_TOPIC;
        publishModels(store, List.of(
                record(topic, MODEL, Announcements.event(MODEL, 3, a).encode()),
                record(topic, MODEL, Announcements.event(MODEL, 7, b).encode()),
                record(topic, MODEL, Announcements.event(MODEL, 5, a).encode()),
                record(topic, MODEL, Announcements.event(MODEL, 9, wrongFileSha).encode()),
                record(topic, MODEL, "{\"schema\": \"loraflow.models.merged\", \"version\": 1"),
                record(topic, "other-job", Announcements.event("other-job", 99, a).encode())));
        Announcements.Release int4 = Announcements.release(store, SEED_A,
                WeightQuantization.of(WeightQuantization.Precision.INT4), root);
        return Map.of("loraflow.test.release-a", a.encode(), "loraflow.test.release-b", b.encode(),
                "loraflow.test.release-a-int4", int4.encode());
    }
}
