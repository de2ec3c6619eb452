package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.Example;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One record of {@code loraflow.training.batches} (schema {@value #SCHEMA}, version {@value #VERSION}),
 * keyed by job id: the job's examples number {@code seq}, or its end-of-job marker. The examples are
 * kept as JSON until the job's vocabulary is known, then checked by {@link #examples}.
 */
public record TrainingBatch(String jobId, long seq, boolean endOfJob, JsonNode examplesJson) {

    public static final String SCHEMA = "loraflow.training.batch";
    public static final int VERSION = 1;

    public static TrainingBatch parse(byte[] value) throws EventFormatException {
        ObjectNode root = Json.parseObject(value, "training batch");
        Json.requireSchema(root, SCHEMA, VERSION, "training batch");
        String jobId = TrainingJob.jobId(Json.text(root, "job_id", "training batch"));
        long seq = Json.integer(root, "seq", -1, 0, Long.MAX_VALUE, "training batch of " + jobId);
        if (seq < 0) {
            throw new EventFormatException("training batch of " + jobId + ": \"seq\" is required");
        }
        boolean end = Json.bool(root, "end_of_job", false, "training batch of " + jobId);
        JsonNode examples = root.get("examples");
        if (end) {
            if (examples != null && !examples.isNull() && !(examples.isArray() && examples.isEmpty())) {
                throw new EventFormatException("training batch " + jobId + "#" + seq + ": an end-of-job marker carries no examples");
            }
            return new TrainingBatch(jobId, seq, true, null);
        }
        if (examples == null || !examples.isArray() || examples.isEmpty()) {
            throw new EventFormatException("training batch " + jobId + "#" + seq + ": \"examples\" must be a non-empty array");
        }
        return new TrainingBatch(jobId, seq, false, examples);
    }

    /**
     * The examples, checked against the model: ids in [0, vocab), labels in it or −100, as many labels as
     * ids, none empty.
     */
    public List<Example> examples(int vocab) throws EventFormatException {
        String where = "training batch " + jobId + "#" + seq;
        List<Example> examples = new ArrayList<>();
        for (int i = 0; i < examplesJson.size(); i++) {
            JsonNode example = examplesJson.get(i);
            String at = where + " examples[" + i + "]";
            if (!example.isObject()) {
                throw new EventFormatException(at + " must be an object with input_ids (and labels)");
            }
            int[] ids = Json.ids(example.get("input_ids"), at + ".input_ids", vocab, false);
            if (ids.length == 0) {
                throw new EventFormatException(at + ".input_ids is empty");
            }
            JsonNode labelsNode = example.get("labels");
            int[] labels = labelsNode == null || labelsNode.isNull() ? ids.clone()
                    : Json.ids(labelsNode, at + ".labels", vocab, true);
            if (labels.length != ids.length) {
                throw new EventFormatException(at + " has " + ids.length + " input_ids but " + labels.length + " labels");
            }
            examples.add(new Example(ids, labels));
        }
        return examples;
    }

    /** The record value for these examples (what a producer sends). */
    public static byte[] encode(String jobId, long seq, List<Example> examples) {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("job_id", jobId);
        root.put("seq", seq);
        ArrayNode array = root.putArray("examples");
        for (Example example : examples) {
            ObjectNode item = array.addObject();
            ArrayNode ids = item.putArray("input_ids");
            for (int id : example.inputIds()) {
                ids.add(id);
            }
            ArrayNode labels = item.putArray("labels");
            for (int label : example.labels()) {
                labels.add(label);
            }
        }
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }

    public static byte[] encodeEnd(String jobId, long seq) {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("job_id", jobId);
        root.put("seq", seq);
        root.put("end_of_job", true);
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }
}
