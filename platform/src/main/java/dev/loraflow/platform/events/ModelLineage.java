package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Where a merged model came from: the base it was merged into and the checkpoint (job, step, adapter
 * artifact) that was merged. Part of {@link MergedModelEvent} and {@link MergeFailureEvent}.
 */
public record ModelLineage(String baseModel, String baseModelSha256, String jobId, long step, String adapterUri,
                           String adapterSha256) {

    /** The lineage of a checkpoint's merge. */
    public static ModelLineage of(CheckpointEvent checkpoint) {
        return new ModelLineage(checkpoint.baseModel(), checkpoint.baseModelSha256(), checkpoint.jobId(),
                checkpoint.step(), checkpoint.adapterUri(), checkpoint.adapterSha256());
    }

    void writeTo(ObjectNode root) {
        ObjectNode lineage = root.putObject("lineage");
        ObjectNode base = lineage.putObject("base_model");
        base.put("name", baseModel);
        base.put("sha256", baseModelSha256);
        lineage.put("job_id", jobId);
        lineage.put("step", step);
        ObjectNode adapter = lineage.putObject("adapter");
        adapter.put("uri", adapterUri);
        adapter.put("sha256", adapterSha256);
    }

    static ModelLineage read(JsonNode root, String what) throws EventFormatException {
        JsonNode lineage = Json.object(root, "lineage", what);
        JsonNode base = Json.object(lineage, "base_model", what);
        JsonNode adapter = Json.object(lineage, "adapter", what);
        return new ModelLineage(Json.text(base, "name", what), Json.text(base, "sha256", what),
                TrainingJob.jobId(Json.text(lineage, "job_id", what)), Json.integer(lineage, "step", what),
                Json.text(adapter, "uri", what), Json.text(adapter, "sha256", what));
    }
}
