package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;

/**
 * One record of {@code loraflow.adapter.checkpoints} (schema {@value #SCHEMA}, version {@value #VERSION}),
 * keyed by job id. Its identity is (job, step): after a crash the same checkpoint may be announced
 * again, with the same content, so consumers treat a repeat as a no-op.
 *
 * @param adapterUri    the PEFT adapter directory (with the training state) in the artifact store
 * @param adapterSha256 the store's digest of that directory
 * @param nextSeq       the first batch sequence number this checkpoint has not wholly consumed
 * @param examplesIntoNextSeq examples of batch {@code nextSeq} already consumed
 */
public record CheckpointEvent(String jobId, long step, double loss, boolean last, String adapterUri, String adapterSha256,
                              String baseModel, String baseModelSha256, JsonNode lora, long nextSeq,
                              int examplesIntoNextSeq, int partition, long offset, Counts counts) {

    public static final String SCHEMA = "loraflow.adapter.checkpoint";
    public static final int VERSION = 1;

    /** received = applied + skippedDuplicate + deadLettered, over the batches up to this checkpoint. */
    public record Counts(long received, long applied, long skippedDuplicate, long deadLettered) {}

    public byte[] encode() {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("job_id", jobId);
        root.put("step", step);
        root.put("loss", loss);
        root.put("final", last);
        ObjectNode adapter = root.putObject("adapter");
        adapter.put("uri", adapterUri);
        adapter.put("sha256", adapterSha256);
        ObjectNode base = root.putObject("base_model");
        base.put("name", baseModel);
        base.put("sha256", baseModelSha256);
        root.set("lora", lora);
        ObjectNode position = root.putObject("input_position");
        position.put("next_seq", nextSeq);
        position.put("examples_into_next_seq", examplesIntoNextSeq);
        position.put("partition", partition);
        position.put("offset", offset);
        ObjectNode batches = root.putObject("batches");
        batches.put("received", counts.received());
        batches.put("applied", counts.applied());
        batches.put("skipped_duplicate", counts.skippedDuplicate());
        batches.put("dead_lettered", counts.deadLettered());
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }

    public static CheckpointEvent parse(byte[] value) throws EventFormatException {
        ObjectNode root = Json.parseObject(value, "checkpoint event");
        Json.requireSchema(root, SCHEMA, VERSION, "checkpoint event");
        String what = "checkpoint event";
        JsonNode adapter = Json.object(root, "adapter", what);
        JsonNode base = Json.object(root, "base_model", what);
        JsonNode position = Json.object(root, "input_position", what);
        JsonNode batches = Json.object(root, "batches", what);
        // The job id names store references and files downstream: the same rule as where jobs are defined.
        return new CheckpointEvent(TrainingJob.jobId(Json.text(root, "job_id", what)), Json.integer(root, "step", what),
                Json.number(root, "loss", Double.NaN, -1e300, 1e300, what), Json.bool(root, "final", false, what),
                Json.text(adapter, "uri", what), Json.text(adapter, "sha256", what), Json.text(base, "name", what),
                Json.text(base, "sha256", what), Json.object(root, "lora", what), Json.integer(position, "next_seq", what),
                (int) Json.integer(position, "examples_into_next_seq", what), (int) Json.integer(position, "partition", what),
                Json.integer(position, "offset", what),
                new Counts(Json.integer(batches, "received", what), Json.integer(batches, "applied", what),
                        Json.integer(batches, "skipped_duplicate", what), Json.integer(batches, "dead_lettered", what)));
    }
}
