package dev.loraflow.platform.events;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.quant.Quantization;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class EventsTest {

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static final String JOB = """
            {"schema": "loraflow.training.job", "version": 1, "job_id": "j-1", "base_model": "gpt2",
             "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["c_attn"]},
             "optimizer": {"lr": 0.0002, "schedule": "cosine", "warmup_steps": 10},
             "batch_size": 4, "seq_len": 128, "total_steps": 100, "checkpoint": {"every_steps": 50}}""";

    @Test
    void aJobRoundTripsAndFillsDefaults() throws EventFormatException {
        TrainingJob job = TrainingJob.parse(utf8(JOB));
        assertEquals(List.of("c_attn"), job.targets());
        assertEquals(1, job.gradAccum());
        assertEquals(42, job.seed());
        assertTrue(job.checkpointAtEnd());
        assertEquals(job, TrainingJob.parse(utf8(job.toJson().toString())));
        assertEquals(Quantization.NONE, job.quantization());
        assertTrue(job.toJson().path("lora").path("quantize").isMissingNode(), "an unquantized job's JSON is unchanged");
    }

    @Test
    void aQloraJobQuantizesItsBaseAndRecordsItInTheAdapterConfig() throws EventFormatException {
        TrainingJob job = TrainingJob.parse(utf8(JOB.replace("\"r\": 8", "\"r\": 8, \"quantize\": \"nf4\"")));
        assertEquals(Quantization.NF4, job.quantization());
        assertEquals(job, TrainingJob.parse(utf8(job.toJson().toString())));
        LoraAdapterConfig config = job.loraConfig(new Gpt2Config(50, 16, 8, 1, 2, 32, 1e-5), "gpt2");
        assertEquals(Quantization.NF4, Quantization.recordedIn(config));
        EventFormatException bad = assertThrows(EventFormatException.class,
                () -> TrainingJob.parse(utf8(JOB.replace("\"r\": 8", "\"r\": 8, \"quantize\": \"fp4\""))));
        assertTrue(bad.getMessage().contains("lora.quantize: quantization must be none, nf4 or int8"), bad.getMessage());
    }

    @Test
    void malformedJobsAreRefusedWithTheReason() {
        String[][] cases = {
                {"{", "not valid JSON"},
                {"[]", "must be a JSON object"},
                {JOB.replace("\"version\": 1", "\"version\": 2"), "version 2 is not supported"},
                {JOB.replace("loraflow.training.job", "other"), "schema"},
                {JOB.replace("\"j-1\"", "\"../etc\""), "job_id"},
                {JOB.replace("\"r\": 8", "\"r\": 0"), "\"r\""},
                {JOB.replace("\"r\": 8", "\"r\": \"8\""), "\"r\" must be an integer"},
                {JOB.replace("\"dropout\": 0.05", "\"dropout\": 1.5"), "dropout"},
                {JOB.replace("\"cosine\"", "\"linear\""), "cosine or constant"},
                {JOB.replace("\"total_steps\": 100, ", ""), "end-of-job marker"},
                {JOB.replace("\"batch_size\": 4", "\"batch_size\": 4, \"batch_size\": 5"), "Duplicate field"},
                {JOB.replace("[\"c_attn\"]", "[]"), "target_modules"},
        };
        for (String[] bad : cases) {
            EventFormatException e = assertThrows(EventFormatException.class, () -> TrainingJob.parse(utf8(bad[0])), bad[1]);
            assertTrue(e.getMessage().contains(bad[1]), bad[1] + " in: " + e.getMessage());
        }
        assertThrows(EventFormatException.class, () -> TrainingJob.parse(new byte[] {(byte) 0xC3, 0x28}));
        assertThrows(EventFormatException.class, () -> TrainingJob.parse(null));
        assertThrows(EventFormatException.class, () -> TrainingJob.parse(utf8("[".repeat(10_000))), "deep nesting");
    }

    @Test
    void batchesCarryTheirExamplesAndAreCheckedAgainstTheVocabulary() throws EventFormatException {
        Example example = new Example(new int[] {1, 2, 3}, new int[] {-100, 2, 3});
        TrainingBatch batch = TrainingBatch.parse(TrainingBatch.encode("j-1", 7, List.of(example)));
        assertEquals(7, batch.seq());
        assertEquals(List.of(example), batch.examples(10));
        assertThrows(EventFormatException.class, () -> batch.examples(3), "id 3 ≥ vocab 3");
        TrainingBatch end = TrainingBatch.parse(TrainingBatch.encodeEnd("j-1", 8));
        assertTrue(end.endOfJob());
        for (String bad : new String[] {
                "{\"schema\": \"loraflow.training.batch\", \"version\": 1, \"job_id\": \"j\", \"examples\": [{}]}",
                "{\"schema\": \"loraflow.training.batch\", \"version\": 1, \"job_id\": \"j\", \"seq\": -1, \"examples\": [{}]}",
                "{\"schema\": \"loraflow.training.batch\", \"version\": 1, \"job_id\": \"j\", \"seq\": 0, \"examples\": []}",
                "{\"schema\": \"loraflow.training.batch\", \"version\": 1, \"job_id\": \"j\", \"seq\": 0, \"end_of_job\": true,"
                        + " \"examples\": [{\"input_ids\": [1]}]}",
        }) {
            assertThrows(EventFormatException.class, () -> TrainingBatch.parse(utf8(bad)), bad);
        }
        for (String bad : new String[] {"[1]", "{\"input_ids\": [1.5]}", "{\"input_ids\": [1], \"labels\": [1, 2]}",
                "{\"input_ids\": [-1]}", "{\"input_ids\": [1], \"labels\": [-5]}", "{\"input_ids\": []}"}) {
            String json = "{\"schema\": \"loraflow.training.batch\", \"version\": 1, \"job_id\": \"j\", \"seq\": 0,"
                    + " \"examples\": [" + bad + "]}";
            TrainingBatch parsed = assertDoesNotThrowParse(json);
            assertThrows(EventFormatException.class, () -> parsed.examples(10), bad);
        }
    }

    private static TrainingBatch assertDoesNotThrowParse(String json) {
        try {
            return TrainingBatch.parse(utf8(json));
        } catch (EventFormatException e) {
            throw new AssertionError(json + ": " + e.getMessage(), e);
        }
    }
}
