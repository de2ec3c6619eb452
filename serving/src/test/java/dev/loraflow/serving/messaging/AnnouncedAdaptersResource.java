package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.CHECKPOINTS_TOPIC;
import static dev.loraflow.serving.messaging.Announcements.record;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.inference.TinyModels;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A real broker, an un-merged export of a tiny base served at start, a store, and checkpoints of job
 * j-old at steps 2 and 4 published before the service starts: discovery should load step 4's adapter.
 */
public class AnnouncedAdaptersResource extends AnnouncingResource {

    static final String BASE = "tiny-base";
    static final String BASE_SHA256 = "b".repeat(64);
    static final long BASE_SEED = 50;
    private static final ObjectMapper JSON = new ObjectMapper();

    static CausalLanguageModel adapted(long seed) {
        return TinyModels.adapted(TinyModels.GPT2, TinyModels.weights(TinyModels.GPT2, BASE_SEED), seed);
    }

    /** The adapter of {@code seed} stored as the trainer stores a checkpoint's. */
    static ArtifactStore.Artifact storeAdapter(LocalArtifactStore store, long seed) throws IOException {
        Path directory = Files.createTempDirectory("adapter-" + seed + "-");
        try {
            adapted(seed).toPeftAdapter().write(directory, DType.F32);
            return store.putDirectory(directory);
        } finally {
            FileTrees.delete(directory);
        }
    }

    static CheckpointEvent checkpoint(String job, long step, String base, ArtifactStore.Artifact adapter, String adapterSha256) {
        return new CheckpointEvent(job, step, 1.0, false, adapter.uri().toString(), adapterSha256, base, BASE_SHA256,
                JSON.createObjectNode().put("r", 2), step, 0, 0, step, new CheckpointEvent.Counts(step, step, 0, 0));
    }

    @Override
    Map<String, String> prepare(Path root, LocalArtifactStore store) throws IOException {
        Path onnx = TinyModels.export(adapted(51), TinyModels.weights(TinyModels.GPT2, BASE_SEED), root.resolve("base"),
                OnnxExporter.Options.defaults().withUnmerged(true));
        ArtifactStore.Artifact step2 = storeAdapter(store, 52);
        ArtifactStore.Artifact step4 = storeAdapter(store, 54);
        publishCheckpoints(List.of(
                record(CHECKPOINTS_TOPIC, "j-old", checkpoint("j-old", 2, BASE, step2, step2.sha256()).encode()),
                record(CHECKPOINTS_TOPIC, "j-old", checkpoint("j-old", 4, BASE, step4, step4.sha256()).encode())));
        return Map.of("loraflow.serving.model.path", onnx.toString());
    }
}
