package dev.loraflow.platform.events;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ModelEventsTest {

    private static final ModelLineage LINEAGE = new ModelLineage("gpt2", "a".repeat(64), "j-1", 40,
            "file:///store/sha256/" + "b".repeat(64), "b".repeat(64));

    @Test
    void mergedAndFailureEventsRoundTrip() throws EventFormatException {
        MergedModelEvent merged = new MergedModelEvent("j-1", 40, "file:///store/sha256/" + "c".repeat(64), "c".repeat(64),
                "model.onnx", "d".repeat(64), 17, "file:///store/sha256/" + "e".repeat(64), "e".repeat(64), "f32",
                new MergedModelEvent.Verification(true, 3.5e-6, 1e-4, 48, true), LINEAGE,
                new MergedModelEvent.Timings(0.5, 1.25, 0.75));
        assertEquals(merged, MergedModelEvent.parse(merged.encode()));

        MergeFailureEvent verification = new MergeFailureEvent("j-1", 41, "verification_failed", "max |Δlogit| 0.3",
                0.3, 1e-4, 40L, LINEAGE);
        assertEquals(verification, MergeFailureEvent.parse(verification.encode()));
        MergeFailureEvent mismatch = new MergeFailureEvent("j-1", 42, "base_sha256_mismatch", "trained on another base",
                Double.NaN, Double.NaN, null, LINEAGE);
        MergeFailureEvent parsed = MergeFailureEvent.parse(mismatch.encode());
        assertNull(parsed.previousVersion());
        assertTrue(Double.isNaN(parsed.maxAbsLogitError()));
        assertTrue(new String(mismatch.encode(), StandardCharsets.UTF_8).contains("\"status\":\"failed\""));
    }

    @Test
    void quantizedGraphsRoundTripAndAnEventWithoutThemReadsAsNone() throws EventFormatException {
        MergedModelEvent.QuantizedGraph published = new MergedModelEvent.QuantizedGraph("int8", "int8 per channel, embeddings f32",
                true, "file:///store/sha256/" + "f".repeat(64), "f".repeat(64), "model.onnx", "0".repeat(64), 0.04, 0.01,
                2.5, 2.51, 0.004, 0.01, null);
        MergedModelEvent.QuantizedGraph refused = new MergedModelEvent.QuantizedGraph("int4", "int4 block 32 symmetric", false,
                null, null, null, null, 0.3, 0.1, 2.5, 2.7, 0.08, 0.05, "FAILED: held-out loss 2.7 (F32 2.5, +8 %, bound +5 %)");
        MergedModelEvent merged = new MergedModelEvent("j-1", 40, "file:///store/sha256/" + "c".repeat(64), "c".repeat(64),
                "model.onnx", "d".repeat(64), 17, "file:///store/sha256/" + "e".repeat(64), "e".repeat(64), "f32",
                new MergedModelEvent.Verification(true, 3.5e-6, 1e-4, 48, true), LINEAGE,
                new MergedModelEvent.Timings(0.5, 1.25, 0.75), java.util.List.of(published, refused));
        assertEquals(merged, MergedModelEvent.parse(merged.encode()));
        String withoutQuantized = new String(merged.encode(), StandardCharsets.UTF_8).replaceAll(",\"quantized\":\\[.*\\]", "");
        assertEquals(java.util.List.of(), MergedModelEvent.parse(withoutQuantized.getBytes(StandardCharsets.UTF_8)).quantized());
    }

    @Test
    void aModelServedFromItsInt4GraphNamesThePrecisionAndAnOlderEventReadsAsF32() throws EventFormatException {
        MergedModelEvent.QuantizedGraph int4 = new MergedModelEvent.QuantizedGraph("int4", "int4 block 32 symmetric",
                true, "file:///store/sha256/" + "f".repeat(64), "f".repeat(64), "model.onnx", "0".repeat(64), 0.3, 0.1,
                2.5, 2.51, 0.004, 0.05, null);
        MergedModelEvent merged = new MergedModelEvent("j-1", 40, int4.onnxUri(), int4.onnxSha256(), "model.onnx",
                int4.onnxFileSha256(), 17, "file:///store/sha256/" + "e".repeat(64), "e".repeat(64), "base",
                new MergedModelEvent.Verification(true, 0.3, Double.NaN, 48, false), LINEAGE,
                new MergedModelEvent.Timings(0.5, 1.25, 0.75), java.util.List.of(int4), "int4");
        String json = new String(merged.encode(), StandardCharsets.UTF_8);
        assertTrue(json.contains("\"precision\":\"int4\",") && !json.contains("\"tolerance\""), json);
        MergedModelEvent parsed = MergedModelEvent.parse(merged.encode());
        assertEquals("int4", parsed.onnxPrecision());
        assertTrue(Double.isNaN(parsed.verification().tolerance()));
        assertEquals(merged.quantized(), parsed.quantized());

        String older = new String(new MergedModelEvent("j-1", 40, int4.onnxUri(), int4.onnxSha256(), "model.onnx",
                int4.onnxFileSha256(), 17, "file:///store/sha256/" + "e".repeat(64), "e".repeat(64), "f32",
                new MergedModelEvent.Verification(true, 3.5e-6, 1e-4, 48, true), LINEAGE,
                new MergedModelEvent.Timings(0.5, 1.25, 0.75)).encode(), StandardCharsets.UTF_8)
                .replace(",\"precision\":\"f32\"", "");
        assertFalse(older.contains("precision"), older);
        assertEquals(MergedModelEvent.F32, MergedModelEvent.parse(older.getBytes(StandardCharsets.UTF_8)).onnxPrecision());
    }

    @Test
    void malformedModelEventsAreRefused() {
        String good = new String(new MergeFailureEvent("j-1", 1, "non_finite", "NaN", Double.NaN, Double.NaN, null, LINEAGE)
                .encode(), StandardCharsets.UTF_8);
        String[][] cases = {
                {good.replace("\"version\":1", "\"version\":2"), "version 2"},
                {good.replace("\"reason\":\"non_finite\",", ""), "\"reason\""},
                {good.replace("\"job_id\":\"j-1\"", "\"job_id\":\"../x\""), "job_id"},
                {good.replace("loraflow.models.merge-failure", "loraflow.models.merged"), "schema"},
        };
        for (String[] bad : cases) {
            EventFormatException e = assertThrows(EventFormatException.class,
                    () -> MergeFailureEvent.parse(bad[0].getBytes(StandardCharsets.UTF_8)), bad[0]);
            assertTrue(e.getMessage().contains(bad[1]), e.getMessage());
        }
    }
}
