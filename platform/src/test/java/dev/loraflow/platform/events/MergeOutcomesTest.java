package dev.loraflow.platform.events;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MergeOutcomesTest {

    private static final ModelLineage LINEAGE = new ModelLineage("gpt2", "a".repeat(64), "j-1", 40,
            "file:///store/sha256/" + "b".repeat(64), "b".repeat(64));

    @TempDir
    Path root;

    private static MergedModelEvent event(long version, String onnxSha256) {
        return new MergedModelEvent("j-1", version, "file:///store/sha256/" + onnxSha256, onnxSha256, "model.onnx",
                "d".repeat(64), 17, "file:///store/sha256/" + "e".repeat(64), "e".repeat(64), "f32",
                new MergedModelEvent.Verification(true, 3.5e-6, 1e-4, 48, true), LINEAGE,
                new MergedModelEvent.Timings(0.5, 1.25, 0.75));
    }

    /** As the merge loop records an outcome before it publishes the event. */
    private static void record(LocalArtifactStore store, MergedModelEvent event, String status) throws IOException {
        ObjectNode outcome = Json.MAPPER.createObjectNode();
        outcome.put("status", status);
        outcome.put("topic", "loraflow.models.merged");
        outcome.put("key", event.model());
        outcome.put("published", true);
        outcome.set("event", Json.MAPPER.readTree(event.encode()));
        store.writeReference(MergeOutcomes.reference(event.model(), event.modelVersion()), Json.MAPPER.writeValueAsBytes(outcome));
    }

    @Test
    void onlyTheEventTheMergerRecordedAsMergedMatches() throws Exception {
        LocalArtifactStore store = new LocalArtifactStore(root);
        MergedModelEvent recorded = event(40, "c".repeat(64));
        record(store, recorded, "merged");
        assertEquals(Optional.empty(), MergeOutcomes.mismatch(store, MergedModelEvent.parse(recorded.encode())));

        String other = MergeOutcomes.mismatch(store, event(40, "f".repeat(64))).orElseThrow();
        assertTrue(other.contains("differs from the merger's record merge-j-1-40.outcome.json"), other);
        String forged = MergeOutcomes.mismatch(store, event(Long.MAX_VALUE / 2, "c".repeat(64))).orElseThrow();
        assertTrue(forged.contains("no merge outcome"), forged);

        record(store, event(41, "c".repeat(64)), "failed");
        String failed = MergeOutcomes.mismatch(store, event(41, "c".repeat(64))).orElseThrow();
        assertTrue(failed.contains("\"failed\", not \"merged\""), failed);

        MergedModelEvent unnameable = new MergedModelEvent("../../etc", 1, recorded.onnxUri(), recorded.onnxSha256(),
                "model.onnx", recorded.onnxFileSha256(), 17, recorded.mergedUri(), recorded.mergedSha256(), "f32",
                recorded.verification(), LINEAGE, recorded.timings());
        assertTrue(MergeOutcomes.mismatch(store, unnameable).orElseThrow().contains("can be recorded"));
    }
}
