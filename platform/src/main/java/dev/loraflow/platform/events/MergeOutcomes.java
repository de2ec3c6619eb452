package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.platform.store.ArtifactStore;
import java.io.IOException;
import java.util.Optional;

/**
 * The merger's record of what became of a checkpoint, kept in the artifact store under
 * {@code merge-<job>-<step>.outcome.json}: {@code {"status": "merged"|"failed", "topic", "key",
 * "published", "event": <the event it announced>}}. Written before the event is published, so a merged
 * model event that was really announced by the merger has its twin in the store; serving loads a model
 * only when it does ({@link #mismatch}). Writing the store is the merger's privilege, which a client that
 * can merely write to Kafka does not have.
 */
public final class MergeOutcomes {

    private MergeOutcomes() {}

    /** The store reference of the outcome of {@code jobId}'s checkpoint at {@code step}. */
    public static String reference(String jobId, long step) {
        return "merge-" + jobId + "-" + step + ".outcome.json";
    }

    /**
     * Why {@code event} is not the merged model the merger recorded for its model and version, or empty
     * when the store holds exactly this event as a successful merge.
     *
     * @throws IOException when the store cannot be read (not the event's fault: ask again later)
     */
    public static Optional<String> mismatch(ArtifactStore store, MergedModelEvent event) throws IOException {
        String reference;
        Optional<byte[]> recorded;
        try {
            reference = reference(event.model(), event.modelVersion());
            recorded = store.readReference(reference);
        } catch (IllegalArgumentException unnameable) {
            return Optional.of("no merge of model \"" + event.model() + "\" can be recorded under that name");
        }
        if (recorded.isEmpty()) {
            return Optional.of("the store has no merge outcome " + reference);
        }
        JsonNode outcome;
        MergedModelEvent merged;
        try {
            outcome = Json.parseObject(recorded.get(), "merge outcome " + reference);
            if (!outcome.path("status").asText().equals("merged")) {
                return Optional.of("the store's outcome " + reference + " is \"" + outcome.path("status").asText()
                        + "\", not \"merged\"");
            }
            merged = MergedModelEvent.parse(Json.MAPPER.writeValueAsBytes(outcome.path("event")));
        } catch (EventFormatException e) {
            return Optional.of("the store's outcome " + reference + " is unreadable: " + e.getMessage());
        }
        if (!merged.equals(event)) {
            return Optional.of("the event differs from the merger's record " + reference + " (onnx "
                    + merged.onnxUri() + " " + merged.onnxSha256() + ", merged " + merged.mergedUri() + ")");
        }
        return Optional.empty();
    }
}
