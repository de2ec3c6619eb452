package dev.loraflow.trainer;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.broker.TopicReader;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.service.support.ServiceHealth;
import dev.loraflow.trainer.service.BaseModels;
import dev.loraflow.trainer.service.TrainingFixtures;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The trainer service against a real Kafka broker: jobs, batches, checkpoints, dead letters, REST. */
@QuarkusTest
@QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = @ResourceArg(name = "user", value = PlatformUsers.TRAINER))
@TestProfile(TrainerProfile.class)
class TrainerKafkaTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The client properties of one of the broker's users, as the test resource configured them. */
    static Properties client(String user) {
        return KafkaClientSettings.fromConfig("loraflow.test.kafka." + user,
                key -> ConfigProvider.getConfig().getOptionalValue(key, String.class)).properties();
    }

    /** Publishes as a data producer does: only jobs and batches. */
    private KafkaProducer<byte[], byte[]> producer() {
        Properties config = client(PlatformUsers.PRODUCER);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 << 20);
        return new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer());
    }

    private void send(KafkaProducer<byte[], byte[]> producer, String topic, String key, byte[] value) throws Exception {
        producer.send(new ProducerRecord<>(topic, key == null ? null : key.getBytes(StandardCharsets.UTF_8), value)).get();
    }

    /** Reads {@code topic} from the start until a record matches, or fails after the timeout. */
    private List<JsonNode> readUntil(String topic, Predicate<List<JsonNode>> done, Duration timeout) throws Exception {
        return TopicReader.readUntil(client(PlatformUsers.ADMIN), topic, JSON::readTree, done, timeout);
    }

    private static String jobJson(String id, long steps) {
        return new String(TrainingFixtures.job(id, steps, 2).toJson().toString().getBytes(StandardCharsets.UTF_8),
                StandardCharsets.UTF_8);
    }

    @Test
    void aJobSubmittedOverRestAndFedOverKafkaEndsWithTheAdapterTheCliTrains() throws Exception {
        ServiceHealth.awaitStatus(ServiceHealth.READY, 200, Duration.ofSeconds(60));
        TrainingJob job = TrainingFixtures.job("e2e", 6, 2);
        given().contentType("application/json").body(jobJson("e2e", 6)).post("/jobs").then().statusCode(401);
        given().contentType("application/json").header("Authorization", "Bearer " + TrainerProfile.API_KEY)
                .body(jobJson("e2e", 6)).post("/jobs").then().statusCode(202).body("job_id", equalTo("e2e"));

        List<Example> examples = TrainingFixtures.examples(6 * 4, 11);
        try (KafkaProducer<byte[], byte[]> producer = producer()) {
            int from = 0;
            for (int seq = 0; from < examples.size(); seq++) {
                int to = Math.min(examples.size(), from + 1 + seq % 4);
                send(producer, "loraflow.training.batches", "e2e", TrainingBatch.encode("e2e", seq, examples.subList(from, to)));
                from = to;
            }
        }
        List<JsonNode> events = readUntil("loraflow.adapter.checkpoints",
                seen -> seen.stream().anyMatch(e -> e.path("job_id").asText().equals("e2e") && e.path("final").asBoolean()),
                Duration.ofMinutes(2));
        List<CheckpointEvent> ours = new ArrayList<>();
        for (JsonNode event : events) {
            if (event.path("job_id").asText().equals("e2e")) {
                ours.add(CheckpointEvent.parse(JSON.writeValueAsBytes(event)));
            }
        }
        assertEquals(List.of(2L, 4L, 6L), ours.stream().map(CheckpointEvent::step).distinct().toList());
        CheckpointEvent last = ours.getLast();

        Path reference = TrainerProfile.ROOT.resolve("reference");
        BaseModels.Base base = new BaseModels(TrainerProfile.ROOT.resolve("models"), 1).get(TrainingFixtures.BASE);
        TrainingFixtures.trainDirectly(base, job, examples, reference);
        Path stored = new LocalArtifactStore(TrainerProfile.ROOT.resolve("store")).open(URI.create(last.adapterUri()),
                last.adapterSha256());
        assertArrayEquals(Files.readAllBytes(reference.resolve(PeftAdapter.WEIGHTS_FILE)),
                Files.readAllBytes(stored.resolve(PeftAdapter.WEIGHTS_FILE)));
        assertEquals(base.sha256(), last.baseModelSha256());

        given().get("/jobs/e2e").then().statusCode(200).body("state", equalTo("FINISHED")).body("step", equalTo(6))
                .body("lastCheckpointSha256", equalTo(last.adapterSha256()));
        given().get("/jobs").then().statusCode(200).body(containsString("e2e"));
        // The progress stream opens with the job's current status as a Server-Sent Event.
        java.net.http.HttpResponse<java.util.stream.Stream<String>> stream = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(URI.create(io.restassured.RestAssured.baseURI + ":"
                        + io.restassured.RestAssured.port + "/jobs/e2e/progress")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofLines());
        assertEquals("text/event-stream", stream.headers().firstValue("content-type").orElse("").split(";")[0]);
        String firstEvent = stream.body().filter(line -> line.startsWith("data:")).findFirst().orElseThrow();
        assertEquals(6, JSON.readTree(firstEvent.substring(5)).path("step").asInt(), firstEvent);
        given().get("/jobs/nope").then().statusCode(404).body("error", containsString("nope"));
        given().get("/q/metrics").then().statusCode(200).body(containsString("loraflow_trainer_steps"));
    }

    static Stream<String> familyBases() {
        return TrainingFixtures.FAMILY_BASES.keySet().stream();
    }

    /** Every decoder family trains from Kafka: two steps, the final adapter byte for byte what the CLI trains. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("familyBases")
    void everyDecoderFamilyTrainsFromKafka(String baseName) throws Exception {
        ServiceHealth.awaitStatus(ServiceHealth.READY, 200, Duration.ofSeconds(60));
        String id = "family-" + baseName;
        TrainingJob job = TrainingFixtures.job(id, baseName, 2, 2);
        given().contentType("application/json").header("Authorization", "Bearer " + TrainerProfile.API_KEY)
                .body(job.toJson().toString()).post("/jobs").then().statusCode(202).body("job_id", equalTo(id));
        List<Example> examples = TrainingFixtures.examples(2 * 4, 21);
        try (KafkaProducer<byte[], byte[]> producer = producer()) {
            send(producer, "loraflow.training.batches", id, TrainingBatch.encode(id, 0, examples));
        }
        List<JsonNode> events = readUntil("loraflow.adapter.checkpoints",
                seen -> seen.stream().anyMatch(e -> e.path("job_id").asText().equals(id) && e.path("final").asBoolean()),
                Duration.ofMinutes(2));
        JsonNode last = events.stream().filter(e -> e.path("job_id").asText().equals(id) && e.path("final").asBoolean())
                .findFirst().orElseThrow();
        CheckpointEvent checkpoint = CheckpointEvent.parse(JSON.writeValueAsBytes(last));

        Path reference = TrainerProfile.ROOT.resolve("reference-" + baseName);
        BaseModels.Base base = new BaseModels(TrainerProfile.ROOT.resolve("models"), 1).get(baseName);
        TrainingFixtures.trainDirectly(base, job, examples, reference);
        Path stored = new LocalArtifactStore(TrainerProfile.ROOT.resolve("store")).open(
                URI.create(checkpoint.adapterUri()), checkpoint.adapterSha256());
        assertArrayEquals(Files.readAllBytes(reference.resolve(PeftAdapter.WEIGHTS_FILE)),
                Files.readAllBytes(stored.resolve(PeftAdapter.WEIGHTS_FILE)), baseName);
    }

    @Test
    void poisonBatchesAreDeadLetteredWithTheirReasonAndTheCountsReconcile() throws Exception {
        ServiceHealth.awaitStatus(ServiceHealth.READY, 200, Duration.ofSeconds(60));
        List<Example> examples = TrainingFixtures.examples(12, 12);
        byte[] nearLimitBinary = new byte[TrainerProfile.MAX_RECORD_BYTES - 1000];
        new java.util.Random(7).nextBytes(nearLimitBinary);
        int copies = 1200;
        while (TrainingBatch.encode("poison", 3, java.util.Collections.nCopies(copies, examples.get(0))).length
                <= TrainerProfile.MAX_RECORD_BYTES) {
            copies *= 2;
        }
        byte[] oversize = TrainingBatch.encode("poison", 3, java.util.Collections.nCopies(copies, examples.get(0)));
        // The topic holds up to the trainer's limit; here it allows more, as a misconfigured one would.
        try (Admin admin = Admin.create(client(PlatformUsers.ADMIN))) {
            admin.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.TOPIC, "loraflow.training.batches"),
                    List.of(new AlterConfigOp(new ConfigEntry(TopicConfig.MAX_MESSAGE_BYTES_CONFIG, Integer.toString(4 << 20)),
                            AlterConfigOp.OpType.SET)))).all().get();
        }
        try (KafkaProducer<byte[], byte[]> producer = producer()) {
            send(producer, "loraflow.training.jobs", "poison", TrainingFixtures.job("poison", 0, 0).toJson().toString()
                    .getBytes(StandardCharsets.UTF_8));
            String topic = "loraflow.training.batches";
            send(producer, topic, "poison", TrainingBatch.encode("poison", 0, examples.subList(0, 4)));
            send(producer, topic, "poison", "{\"schema\": ".getBytes(StandardCharsets.UTF_8));
            send(producer, topic, "poison", """
                    {"schema": "loraflow.training.batch", "version": 9, "job_id": "poison", "seq": 1, "examples": []}"""
                    .getBytes(StandardCharsets.UTF_8));
            send(producer, topic, "poison", """
                    {"schema": "loraflow.training.batch", "version": 1, "job_id": "poison", "seq": 1,
                     "examples": [{"input_ids": [5, 300000]}]}""".getBytes(StandardCharsets.UTF_8));
            send(producer, topic, "poison", """
                    {"schema": "loraflow.training.batch", "version": 1, "job_id": "poison", "seq": 2,
                     "examples": [{"input_ids": [5, 6], "labels": [5]}]}""".getBytes(StandardCharsets.UTF_8));
            send(producer, topic, "poison", oversize);
            send(producer, topic, "poison", nearLimitBinary);
            send(producer, topic, "someone-else", TrainingBatch.encode("poison", 3, examples.subList(4, 8)));
            send(producer, topic, "poison", TrainingBatch.encode("poison", 0, examples.subList(0, 4)));   // duplicate
            send(producer, topic, "poison", TrainingBatch.encode("poison", 3, examples.subList(4, 12)));
            send(producer, topic, "poison", TrainingBatch.encodeEnd("poison", 4));
        }
        List<JsonNode> checkpoints = readUntil("loraflow.adapter.checkpoints",
                seen -> seen.stream().anyMatch(e -> e.path("job_id").asText().equals("poison") && e.path("final").asBoolean()),
                Duration.ofMinutes(2));
        JsonNode last = checkpoints.stream().filter(e -> e.path("job_id").asText().equals("poison")).reduce((a, b) -> b)
                .orElseThrow();
        JsonNode counts = last.path("batches");
        assertEquals(counts.path("received").asLong(), counts.path("applied").asLong()
                + counts.path("skipped_duplicate").asLong() + counts.path("dead_lettered").asLong(), counts.toString());
        assertEquals(2, counts.path("applied").asLong(), counts.toString());
        assertEquals(1, counts.path("skipped_duplicate").asLong(), counts.toString());

        List<JsonNode> deadLetters = readUntil("loraflow.training.dead-letters",
                seen -> seen.stream().filter(d -> d.path("source").path("topic").asText().equals("loraflow.training.batches")
                        && d.path("job_id").asText().matches("poison|someone-else")).count() >= 7,
                Duration.ofSeconds(30));
        String reasons = deadLetters.toString();
        for (String reason : List.of("not valid JSON", "schema version 9", "outside the vocabulary", "labels",
                "exceeds the limit", "is not its job_id")) {
            assertTrue(reasons.contains(reason), reason + " in " + reasons);
        }
        assertTrue(deadLetters.stream().anyMatch(d -> d.path("source").path("value").asText().startsWith("{\"schema\": ")),
                "the original record travels with its dead letter");
        assertTrue(deadLetters.stream().anyMatch(d -> d.path("source").has("value_base64") && java.util.Arrays.equals(
                        nearLimitBinary, java.util.Base64.getDecoder().decode(d.path("source").path("value_base64").asText()))),
                "a binary record just under the limit travels whole, in base64");
        assertTrue(deadLetters.stream().anyMatch(d -> d.path("source").path("value_omitted").path("bytes").asInt() == oversize.length
                        && d.path("source").path("value_omitted").path("sha256").asText().equals(Sha256.of(oversize))),
                "a record over the limit is named by its length and digest");
        given().get("/jobs/poison").then().statusCode(200).body("state", equalTo("FINISHED"))
                .body("batchesDeadLettered", equalTo(counts.path("dead_lettered").asInt()));
    }

    @Test
    void hostileJobSubmissionsAreRefusedWithAReason() {
        String key = "Bearer " + TrainerProfile.API_KEY;
        given().contentType("application/json").header("Authorization", "Bearer wrong").body(jobJson("x", 4))
                .post("/jobs").then().statusCode(401);
        given().contentType("application/json").header("X-API-Key", TrainerProfile.API_KEY).body("{not json")
                .post("/jobs").then().statusCode(400).body("error", containsString("not valid JSON"));
        for (String base : List.of("../models/tiny-gpt2", "/etc", "tiny-gpt2/../../x", "missing")) {
            String job = jobJson("x", 4).replace("\"base_model\":\"tiny-gpt2\"", "\"base_model\":\"" + base + "\"");
            given().contentType("application/json").header("Authorization", key).body(job).post("/jobs").then()
                    .statusCode(400).body("error", containsString(base.equals("missing") ? "not found" : "base model"));
        }
        given().contentType("application/json").header("Authorization", key).body("{\"pad\": \"" + "x".repeat(70_000) + "\"}")
                .post("/jobs").then().statusCode(400);
        given().contentType("application/json").header("Authorization", key)
                .body(jobJson("x", 4).replace("\"job_id\":\"x\"", "\"job_id\":\"bad id!\"")).post("/jobs").then().statusCode(400).body("error", containsString("job_id"));
    }

}
