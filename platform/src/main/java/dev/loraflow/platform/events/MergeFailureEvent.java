package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;

/**
 * One record of {@code loraflow.models.merge-failures} (schema {@value #SCHEMA}, version {@value #VERSION}),
 * keyed by model name: a checkpoint that was not merged or not announced, and why. The model in service
 * stays {@code previousVersion}.
 *
 * @param modelVersion     the version the checkpoint would have become (its step)
 * @param reason           a stable code: base_sha256_mismatch, artifact_sha256_mismatch, missing_target_module,
 *                         shape_mismatch, non_finite, unsupported, verification_failed, unknown_base_model,
 *                         unreadable_adapter or error
 * @param message          what is wrong, naming the module, tensor or digest
 * @param maxAbsLogitError measured by a failed verification, else NaN
 * @param tolerance        the verification's tolerance, else NaN
 * @param previousVersion  the last version of this model announced as merged, or null if none
 */
public record MergeFailureEvent(String model, long modelVersion, String reason, String message, double maxAbsLogitError,
                                double tolerance, Long previousVersion, ModelLineage lineage) {

    public static final String SCHEMA = "loraflow.models.merge-failure";
    public static final int VERSION = 1;

    public byte[] encode() {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("model", model);
        root.put("model_version", modelVersion);
        root.put("status", "failed");
        root.put("reason", reason);
        root.put("message", message);
        if (!Double.isNaN(maxAbsLogitError) || !Double.isNaN(tolerance)) {
            ObjectNode measured = root.putObject("measured");
            putNumberOrNull(measured, "max_abs_logit_error", maxAbsLogitError);
            putNumberOrNull(measured, "tolerance", tolerance);
        }
        if (previousVersion == null) {
            root.putNull("previous_version");
        } else {
            root.put("previous_version", previousVersion);
        }
        lineage.writeTo(root);
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }

    // JSON has no NaN: an error that could not be measured (ONNX Runtime failed, a logit was NaN) is null.
    private static void putNumberOrNull(ObjectNode node, String key, double value) {
        if (Double.isFinite(value)) {
            node.put(key, value);
        } else {
            node.putNull(key);
        }
    }

    public static MergeFailureEvent parse(byte[] value) throws EventFormatException {
        String what = "merge failure event";
        ObjectNode root = Json.parseObject(value, what);
        Json.requireSchema(root, SCHEMA, VERSION, what);
        JsonNode measured = Json.object(root, "measured", what);
        JsonNode previous = root.get("previous_version");
        return new MergeFailureEvent(Json.text(root, "model", what), Json.integer(root, "model_version", what),
                Json.text(root, "reason", what), Json.text(root, "message", what),
                Json.number(measured, "max_abs_logit_error", Double.NaN, 0, Double.MAX_VALUE, what),
                Json.number(measured, "tolerance", Double.NaN, 0, Double.MAX_VALUE, what),
                previous == null || previous.isNull() ? null : Json.integer(root, "previous_version", what),
                ModelLineage.read(root, what));
    }
}
