package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One record of {@code loraflow.models.merged} (schema {@value #SCHEMA}, version {@value #VERSION}),
 * keyed by model name: a checkpoint merged, exported to ONNX and verified. Only verified models are
 * announced; the version is the checkpoint's step, so the same checkpoint always gives the same version.
 *
 * @param model          the model's name, the training job's id
 * @param modelVersion   the checkpoint's step
 * @param onnxUri        the store artifact holding {@code onnxFile} (and its external data, if any)
 * @param onnxSha256     the store's digest of that artifact
 * @param onnxFileSha256 SHA-256 of the .onnx file itself
 * @param mergedUri      the store artifact holding the merged Hugging Face model directory
 * @param dtype          what the merged model's tensors are stored as: f32, f16, bf16 or base
 * @param quantized      the quantized graphs the merger was configured to publish (field {@code quantized}, absent
 *                       in events of merges without: read as empty), each published or refused with the reason
 * @param onnxPrecision  the precision of the graph {@code onnx} names, the one to serve (field {@code onnx.precision}):
 *                       f32, or — when the merger publishes no F32 graph — the most precise quantized graph published,
 *                       which is also listed in {@code quantized} with its figures; absent in older events: f32
 */
public record MergedModelEvent(String model, long modelVersion, String onnxUri, String onnxSha256, String onnxFile,
                               String onnxFileSha256, int opset, String mergedUri, String mergedSha256, String dtype,
                               Verification verification, ModelLineage lineage, Timings timings,
                               List<QuantizedGraph> quantized, String onnxPrecision) {

    public static final String F32 = "f32";

    public MergedModelEvent {
        quantized = List.copyOf(quantized);
    }

    /** A merge whose served graph is the F32 one. */
    public MergedModelEvent(String model, long modelVersion, String onnxUri, String onnxSha256, String onnxFile,
                            String onnxFileSha256, int opset, String mergedUri, String mergedSha256, String dtype,
                            Verification verification, ModelLineage lineage, Timings timings,
                            List<QuantizedGraph> quantized) {
        this(model, modelVersion, onnxUri, onnxSha256, onnxFile, onnxFileSha256, opset, mergedUri, mergedSha256, dtype,
                verification, lineage, timings, quantized, F32);
    }

    /** A merge that published the F32 graph only. */
    public MergedModelEvent(String model, long modelVersion, String onnxUri, String onnxSha256, String onnxFile,
                            String onnxFileSha256, int opset, String mergedUri, String mergedSha256, String dtype,
                            Verification verification, ModelLineage lineage, Timings timings) {
        this(model, modelVersion, onnxUri, onnxSha256, onnxFile, onnxFileSha256, opset, mergedUri, mergedSha256, dtype,
                verification, lineage, timings, List.of());
    }

    /**
     * One quantized graph (int8 or int4) of the merged model, checked against the F32 Java forward of base +
     * adapter: the probe's logit error, and the held-out loss of both.
     *
     * @param precision          int8 or int4
     * @param description        how the weights are stored, e.g. "int4 block 32 symmetric accuracy_level 4, embeddings f32"
     * @param published          whether it went into the store; the artifact fields are null when not
     * @param maxLossIncrease    the configured bound on lossIncrease
     * @param reason             why it was refused, null when published
     */
    public record QuantizedGraph(String precision, String description, boolean published, String onnxUri,
                                 String onnxSha256, String onnxFile, String onnxFileSha256, double maxAbsLogitError,
                                 double relativeLogitError, double f32Loss, double quantizedLoss, double lossIncrease,
                                 double maxLossIncrease, String reason) {}

    public static final String SCHEMA = "loraflow.models.merged";
    public static final int VERSION = 1;

    /**
     * ONNX Runtime against the Java forward of the un-merged base + adapter, for the served graph: a quantized one is
     * held to its held-out loss bound (in its {@code quantized} entry), not to a logit tolerance (NaN, left out).
     */
    public record Verification(boolean passed, double maxAbsLogitError, double tolerance, int rowsChecked,
                               boolean greedyIdentical) {}

    /** Wall-clock seconds of each stage. */
    public record Timings(double mergeSeconds, double exportSeconds, double verifySeconds) {}

    public byte[] encode() {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("model", model);
        root.put("model_version", modelVersion);
        ObjectNode onnx = root.putObject("onnx");
        onnx.put("uri", onnxUri);
        onnx.put("sha256", onnxSha256);
        onnx.put("file", onnxFile);
        onnx.put("file_sha256", onnxFileSha256);
        onnx.put("opset", opset);
        onnx.put("precision", onnxPrecision);
        ObjectNode merged = root.putObject("merged_model");
        merged.put("uri", mergedUri);
        merged.put("sha256", mergedSha256);
        merged.put("dtype", dtype);
        ObjectNode checked = root.putObject("verification");
        checked.put("passed", verification.passed());
        checked.put("max_abs_logit_error", verification.maxAbsLogitError());
        putFinite(checked, "tolerance", verification.tolerance());
        checked.put("rows_checked", verification.rowsChecked());
        checked.put("greedy_identical", verification.greedyIdentical());
        lineage.writeTo(root);
        ObjectNode seconds = root.putObject("timings");
        seconds.put("merge_s", timings.mergeSeconds());
        seconds.put("export_s", timings.exportSeconds());
        seconds.put("verify_s", timings.verifySeconds());
        if (!quantized.isEmpty()) {
            ArrayNode graphs = root.putArray("quantized");
            for (QuantizedGraph graph : quantized) {
                ObjectNode entry = graphs.addObject();
                entry.put("precision", graph.precision());
                entry.put("description", graph.description());
                entry.put("published", graph.published());
                if (graph.published()) {
                    entry.put("uri", graph.onnxUri());
                    entry.put("sha256", graph.onnxSha256());
                    entry.put("file", graph.onnxFile());
                    entry.put("file_sha256", graph.onnxFileSha256());
                } else {
                    entry.put("reason", graph.reason());
                }
                putFinite(entry, "max_abs_logit_error", graph.maxAbsLogitError());
                putFinite(entry, "relative_logit_error", graph.relativeLogitError());
                putFinite(entry, "f32_loss", graph.f32Loss());
                putFinite(entry, "quantized_loss", graph.quantizedLoss());
                putFinite(entry, "loss_increase", graph.lossIncrease());
                entry.put("max_loss_increase", graph.maxLossIncrease());
            }
        }
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }

    public static MergedModelEvent parse(byte[] value) throws EventFormatException {
        String what = "merged model event";
        ObjectNode root = Json.parseObject(value, what);
        Json.requireSchema(root, SCHEMA, VERSION, what);
        JsonNode onnx = Json.object(root, "onnx", what);
        JsonNode merged = Json.object(root, "merged_model", what);
        JsonNode checked = Json.object(root, "verification", what);
        JsonNode seconds = Json.object(root, "timings", what);
        return new MergedModelEvent(Json.text(root, "model", what), Json.integer(root, "model_version", what),
                Json.text(onnx, "uri", what), Json.text(onnx, "sha256", what), Json.text(onnx, "file", what),
                Json.text(onnx, "file_sha256", what), (int) Json.integer(onnx, "opset", what),
                Json.text(merged, "uri", what), Json.text(merged, "sha256", what), Json.text(merged, "dtype", what),
                new Verification(Json.bool(checked, "passed", false, what),
                        Json.number(checked, "max_abs_logit_error", Double.NaN, 0, Double.MAX_VALUE, what),
                        Json.number(checked, "tolerance", Double.NaN, 0, Double.MAX_VALUE, what),
                        (int) Json.integer(checked, "rows_checked", what), Json.bool(checked, "greedy_identical", false, what)),
                ModelLineage.read(root, what),
                new Timings(Json.number(seconds, "merge_s", Double.NaN, 0, Double.MAX_VALUE, what),
                        Json.number(seconds, "export_s", Double.NaN, 0, Double.MAX_VALUE, what),
                        Json.number(seconds, "verify_s", Double.NaN, 0, Double.MAX_VALUE, what)),
                quantized(root, what), Json.optionalText(onnx, "precision", F32, what));
    }

    /** A NaN (not measured, or a NaN logit) is left out: JSON has no NaN. */
    private static void putFinite(ObjectNode node, String key, double value) {
        if (Double.isFinite(value)) {
            node.put(key, value);
        }
    }

    private static List<QuantizedGraph> quantized(JsonNode root, String what) throws EventFormatException {
        JsonNode array = root.get("quantized");
        if (array == null || array.isNull()) {
            return List.of();
        }
        if (!array.isArray()) {
            throw new EventFormatException(what + ": \"quantized\" must be an array");
        }
        List<QuantizedGraph> graphs = new ArrayList<>();
        for (JsonNode entry : array) {
            if (!entry.isObject()) {
                throw new EventFormatException(what + ": each of \"quantized\" must be an object");
            }
            boolean published = Json.bool(entry, "published", false, what);
            double max = Double.MAX_VALUE;
            graphs.add(new QuantizedGraph(Json.text(entry, "precision", what), Json.optionalText(entry, "description", "", what),
                    published,
                    published ? Json.text(entry, "uri", what) : null, published ? Json.text(entry, "sha256", what) : null,
                    published ? Json.text(entry, "file", what) : null, published ? Json.text(entry, "file_sha256", what) : null,
                    Json.number(entry, "max_abs_logit_error", Double.NaN, 0, max, what),
                    Json.number(entry, "relative_logit_error", Double.NaN, 0, max, what),
                    Json.number(entry, "f32_loss", Double.NaN, 0, max, what),
                    Json.number(entry, "quantized_loss", Double.NaN, 0, max, what),
                    Json.number(entry, "loss_increase", Double.NaN, -max, max, what),
                    Json.number(entry, "max_loss_increase", Double.NaN, 0, max, what),
                    published ? null : Json.optionalText(entry, "reason", "not published", what)));
        }
        return graphs;
    }
}
