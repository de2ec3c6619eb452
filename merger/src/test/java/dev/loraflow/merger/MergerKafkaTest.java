package dev.loraflow.merger;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.broker.KafkaBrokerTestResource;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.broker.TopicReader;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.merger.service.MergerService;
import dev.loraflow.merger.service.StoreRetentionService;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.MergeFailureEvent;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.service.support.ServiceHealth;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/** The merger service against a real Kafka broker: checkpoints in, verified models or failures out. */
@QuarkusTest
@QuarkusTestResource(value = KafkaBrokerTestResource.class, initArgs = @ResourceArg(name = "user", value = PlatformUsers.MERGER))
@TestProfile(MergerProfile.class)
class MergerKafkaTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String CHECKPOINTS = "loraflow.adapter.checkpoints";
    private static final String MERGED = "loraflow.models.merged";
    private static final String FAILURES = "loraflow.models.merge-failures";

    @Inject
    MergerService service;
    @Inject
    StoreRetentionService retention;

    static LocalArtifactStore store() throws IOException {
        return new LocalArtifactStore(MergerProfile.ROOT.resolve("store"));
    }

    static Path base() {
        return MergerProfile.ROOT.resolve("models").resolve(MergerProfile.BASE);
    }

    /** A trained-looking adapter on every attention and MLP module (B random), stored as the trainer stores it. */
    static ArtifactStore.Artifact storeAdapter(Gpt2Config shape, long seed, Consumer<LoRALinear> tamper)
            throws IOException {
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(2).loraAlpha(4).targetModules("c_attn", "c_proj", "c_fc").build();
        CausalLanguageModel model = CausalLanguageModel.create(shape, RandomModel.initialWeights(shape, 1), lora, seed);
        Rng rng = new Rng(seed);
        for (LoRALinear module : model.adaptedModules().values()) {
            float[] b = module.loraB().value();
            for (int i = 0; i < b.length; i++) {
                b[i] = rng.nextUniform(0.5f);
            }
            tamper.accept(module);
        }
        Path staging = Files.createTempDirectory(MergerProfile.ROOT, "adapter-");
        model.toPeftAdapter().write(staging, DType.F32);
        return store().putDirectory(staging);
    }

    static ArtifactStore.Artifact storeAdapter(long seed) throws IOException {
        return storeAdapter(MergerProfile.CONFIG, seed, module -> {});
    }

    private static CheckpointEvent checkpoint(String job, long step, boolean last, ArtifactStore.Artifact adapter,
                                              String adapterSha256, String baseSha256) {
        return new CheckpointEvent(job, step, 1.5, last, adapter.uri().toString(), adapterSha256, MergerProfile.BASE,
                baseSha256, JSON.createObjectNode().put("r", 2), step, 0, 0, step, new CheckpointEvent.Counts(step, step, 0, 0));
    }

    static CheckpointEvent checkpoint(String job, long step, boolean last, ArtifactStore.Artifact adapter)
            throws IOException {
        return checkpoint(job, step, last, adapter, adapter.sha256(), ModelDigest.of(base()));
    }

    /** The client properties of one of the broker's users, as the test resource configured them. */
    static Properties client(String user) {
        return KafkaClientSettings.fromConfig("loraflow.test.kafka." + user,
                key -> ConfigProvider.getConfig().getOptionalValue(key, String.class)).properties();
    }

    /** Announces checkpoints as the trainer does. */
    static void send(CheckpointEvent... events) throws Exception {
        Properties config = client(PlatformUsers.TRAINER);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (CheckpointEvent event : events) {
                producer.send(new ProducerRecord<>(CHECKPOINTS, event.jobId().getBytes(StandardCharsets.UTF_8), event.encode())).get();
            }
        }
    }

    /** Reads {@code topic} from the start until {@code done} holds, or fails after the timeout. */
    private static List<byte[]> readUntil(String topic, Predicate<List<byte[]>> done, Duration timeout) throws Exception {
        return TopicReader.readUntil(client(PlatformUsers.ADMIN), topic, value -> value, done, timeout);
    }

    /** Everything on {@code topic} that arrives within {@code duration}: for asserting what never comes. */
    private List<byte[]> readFor(String topic, Duration duration) throws Exception {
        return TopicReader.readFor(client(PlatformUsers.ADMIN), topic, value -> value, duration);
    }

    private static List<MergedModelEvent> parseMerged(List<byte[]> values, String job) throws Exception {
        List<MergedModelEvent> ours = new ArrayList<>();
        for (byte[] value : values) {
            MergedModelEvent event = MergedModelEvent.parse(value);
            if (event.model().equals(job)) {
                ours.add(event);
            }
        }
        return ours;
    }

    static List<MergedModelEvent> mergedEvents(String job, int atLeast) throws Exception {
        List<MergedModelEvent> ours = new ArrayList<>();
        for (byte[] value : readUntil(MERGED, seen -> count(seen, job) >= atLeast, Duration.ofMinutes(2))) {
            MergedModelEvent event = MergedModelEvent.parse(value);
            if (event.model().equals(job)) {
                ours.add(event);
            }
        }
        return ours;
    }

    private static long count(List<byte[]> values, String job) {
        return values.stream().filter(v -> new String(v, StandardCharsets.UTF_8).contains("\"model\":\"" + job + "\"")).count();
    }

    private void awaitReady() throws InterruptedException {
        ServiceHealth.awaitStatus(ServiceHealth.READY, 200, Duration.ofMinutes(1));
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Test
    void aFinalCheckpointDeliveredTwiceBecomesOneVerifiedModelAndALaterFailureKeepsIt() throws Exception {
        awaitReady();
        given().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
        ArtifactStore.Artifact adapter = storeAdapter(11);
        long duplicatesBefore = service.merges().duplicates();
        CheckpointEvent event = checkpoint("j-ok", 4, true, adapter);
        send(event, event);

        MergedModelEvent merged = mergedEvents("j-ok", 1).getFirst();
        long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
        while (service.merges().duplicates() == duplicatesBefore) {
            assertTrue(System.nanoTime() < deadline, "the second delivery was never seen");
            sleep(100);
        }
        assertEquals(1, parseMerged(readFor(MERGED, Duration.ofSeconds(3)), "j-ok").size(),
                "one event for the checkpoint delivered twice");
        assertEquals(4, merged.modelVersion());
        // The announced event is the merger's outcome record in the store: what serving checks before loading.
        assertEquals(Optional.empty(), MergeOutcomes.mismatch(store(), merged));
        assertTrue(merged.verification().passed() && merged.verification().maxAbsLogitError() <= 1e-4, merged.toString());
        assertEquals("j-ok", merged.lineage().jobId());
        assertEquals(adapter.sha256(), merged.lineage().adapterSha256());
        assertEquals(ModelDigest.of(base()), merged.lineage().baseModelSha256());

        Path onnx = store().open(URI.create(merged.onnxUri()), merged.onnxSha256());
        assertEquals(merged.onnxFileSha256(), Sha256.of(onnx.resolve(merged.onnxFile())));
        Path mergedModel = store().open(URI.create(merged.mergedUri()), merged.mergedSha256());
        assertEquals(MergerProfile.CONFIG, CausalLanguageModel.load(mergedModel, null, 0).config());
        // The quantized graphs MergerProfile configures, measured against the same reference as the F32 one.
        assertEquals(List.of("int8", "int4"), merged.quantized().stream().map(MergedModelEvent.QuantizedGraph::precision).toList());
        MergedModelEvent.QuantizedGraph int8 = merged.quantized().getFirst();
        assertTrue(int8.published() && int8.maxAbsLogitError() > 0 && int8.f32Loss() > 0 && int8.quantizedLoss() > 0,
                int8.toString());
        Path int8Onnx = store().open(URI.create(int8.onnxUri()), int8.onnxSha256());
        assertEquals(int8.onnxFileSha256(), Sha256.of(int8Onnx.resolve(int8.onnxFile())));
        MergedModelEvent.QuantizedGraph int4 = merged.quantized().getLast();
        assertEquals(0.0, int4.maxLossIncrease());
        assertEquals(int4.lossIncrease() <= 0, int4.published(), int4.toString());
        if (!int4.published()) {
            assertTrue(int4.onnxUri() == null && int4.reason().contains("held-out loss"), int4.toString());
        }
        given().get("/merges/j-ok/4").then().statusCode(200).body("status", equalTo("merged"))
                .body("published", equalTo(true));
        given().get("/q/metrics").then().statusCode(200)
                .body(containsString("loraflow_merger_merge_seconds_count"))
                .body(containsString("loraflow_merger_export_seconds_count"))
                .body(containsString("loraflow_merger_verification_max_abs_logit_error"));

        ArtifactStore.Artifact broken = storeAdapter(MergerProfile.CONFIG, 12, module -> module.loraB().value()[3] = Float.NaN);
        send(checkpoint("j-ok", 6, true, broken));
        MergeFailureEvent failure = failures("j-ok", 1).getFirst();
        assertEquals("non_finite", failure.reason());
        assertEquals(6, failure.modelVersion());
        assertEquals(4L, failure.previousVersion(), "the model in service stays version 4");
    }

    static List<MergeFailureEvent> failures(String job, int atLeast) throws Exception {
        List<MergeFailureEvent> ours = new ArrayList<>();
        for (byte[] value : readUntil(FAILURES, seen -> count(seen, job) >= atLeast, Duration.ofMinutes(2))) {
            MergeFailureEvent event = MergeFailureEvent.parse(value);
            if (event.model().equals(job)) {
                ours.add(event);
            }
        }
        return ours;
    }

    /** Retention runs in the merger; the store's size, as its last pass measured it, is a Prometheus gauge. */
    @Test
    void theStoreSizeIsExportedAsAMetric() throws Exception {
        storeAdapter(21);
        retention.sweep();
        long bytes = store().diskUsage();
        assertTrue(bytes > 0);
        assertEquals(bytes, retention.storeBytes(), "nothing deleted: the adapters are younger than the retention");
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        java.util.regex.Matcher gauge = java.util.regex.Pattern.compile("(?m)^loraflow_store_bytes(?:\\{[^}]*})? (\\S+)$")
                .matcher(metrics);
        assertTrue(gauge.find(), metrics);
        assertEquals(bytes, Double.parseDouble(gauge.group(1)));
        assertTrue(metrics.contains("loraflow_store_artifacts_deleted_total"), metrics);
    }

    @Test
    void aCheckpointThatIsNotFinalIsMergedOnRequest() throws Exception {
        awaitReady();
        send(checkpoint("j-req", 2, false, storeAdapter(21)));
        String body = "{\"job_id\": \"j-req\", \"step\": 2}";
        given().contentType("application/json").body(body).post("/merges").then().statusCode(401);
        long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
        int status;
        while ((status = given().contentType("application/json").header("X-API-Key", MergerProfile.API_KEY).body(body)
                .post("/merges").statusCode()) == 404) {
            assertTrue(System.nanoTime() < deadline, "the checkpoint was never seen");
            sleep(200);
        }
        assertEquals(202, status, "queued: the trigger (final) did not merge it on arrival");

        MergedModelEvent merged = mergedEvents("j-req", 1).getFirst();
        assertEquals(2, merged.modelVersion());
        given().contentType("application/json").header("Authorization", "Bearer " + MergerProfile.API_KEY).body(body)
                .post("/merges").then().statusCode(200).body("status", equalTo("merged"));
        given().contentType("application/json").header("X-API-Key", MergerProfile.API_KEY)
                .body("{\"job_id\": \"j-req\", \"step\": 99}").post("/merges").then().statusCode(404);
        given().contentType("application/json").header("X-API-Key", MergerProfile.API_KEY)
                .body("{\"job_id\": \"../x\", \"step\": 1}").post("/merges").then().statusCode(400);
        assertEquals(1, parseMerged(readFor(MERGED, Duration.ofSeconds(2)), "j-req").size());
    }

    @Test
    void everyMismatchPublishesAFailureEventNamingIt() throws Exception {
        awaitReady();
        ArtifactStore.Artifact good = storeAdapter(31);
        ArtifactStore.Artifact other = storeAdapter(32);
        String baseSha = ModelDigest.of(base());
        Gpt2Config deeper = new Gpt2Config(48, 32, 16, 3, 2, 32, 1e-5);
        Gpt2Config wider = new Gpt2Config(48, 32, 24, 2, 2, 32, 1e-5);
        send(checkpoint("j-base", 1, true, good, good.sha256(), "0".repeat(64)),
                checkpoint("j-artifact", 1, true, good, other.sha256(), baseSha),
                checkpoint("j-missing", 1, true, storeAdapter(deeper, 33, module -> {})),
                checkpoint("j-shape", 1, true, storeAdapter(wider, 34, module -> {})),
                checkpoint("j-nan", 1, true, storeAdapter(MergerProfile.CONFIG, 35,
                        module -> module.loraA().value()[0] = Float.POSITIVE_INFINITY)));

        Map<String, String[]> expected = Map.of(
                "j-base", new String[] {"base_sha256_mismatch", baseSha},
                "j-artifact", new String[] {"artifact_sha256_mismatch", other.sha256()},
                "j-missing", new String[] {"missing_target_module", "transformer.h.2."},
                "j-shape", new String[] {"shape_mismatch", "transformer.h.0.attn.c_attn"},
                "j-nan", new String[] {"non_finite", "lora_A"});
        List<byte[]> values = readUntil(FAILURES, seen -> expected.keySet().stream().allMatch(job -> count(seen, job) >= 1),
                Duration.ofMinutes(2));
        for (byte[] value : values) {
            MergeFailureEvent failure = MergeFailureEvent.parse(value);
            String[] want = expected.get(failure.model());
            if (want != null) {
                assertEquals(want[0], failure.reason(), failure.message());
                assertTrue(failure.message().contains(want[1]), failure.message());
                given().get("/merges/" + failure.model() + "/1").then().statusCode(200).body("status", equalTo("failed"));
            }
        }
        List<byte[]> merged = readFor(MERGED, Duration.ofSeconds(3));
        for (String job : expected.keySet()) {
            assertEquals(0, count(merged, job), job + " is never announced as merged");
        }
    }

    @Test
    void aCrashMidExportLeavesNoPartialArtifactAndTheCheckpointIsMergedOnce() throws Exception {
        awaitReady();
        ArtifactStore.Artifact adapter = storeAdapter(41);
        List<Path> before = artifacts();
        send(checkpoint(MergerProfile.CRASHING_JOB, 3, true, adapter));

        MergedModelEvent merged = mergedEvents(MergerProfile.CRASHING_JOB, 1).getFirst();
        assertEquals(1, service.merges().crashes(), "the merge died once after its export");
        List<Path> after = artifacts();
        long quantized = merged.quantized().stream().filter(MergedModelEvent.QuantizedGraph::published).count();
        assertEquals(before.size() + 2 + quantized, after.size(),
                "the merged model, the ONNX file and the published quantized graphs, nothing from the crashed try");
        for (Path artifact : after) {
            String digest = artifact.getFileName().toString();
            store().open(artifact.toUri(), digest);
        }
        assertTrue(after.stream().anyMatch(path -> path.getFileName().toString().equals(merged.onnxSha256())));
        try (Stream<Path> tmp = Files.list(MergerProfile.ROOT.resolve("store").resolve("tmp"))) {
            assertFalse(tmp.findAny().isPresent(), "nothing half-copied in the store");
        }
        assertEquals(1, parseMerged(readFor(MERGED, Duration.ofSeconds(3)), MergerProfile.CRASHING_JOB).size());
    }

    @Test
    void aPoisonRecordIsDeadLetteredAndAStoreThatCannotBeWrittenIsWaitedOutNeverAnnouncedAsAFailure() throws Exception {
        awaitReady();
        ArtifactStore.Artifact adapter = storeAdapter(51);
        Properties config = client(PlatformUsers.ADMIN);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            // A job id that would name a reference outside the store's, and a record that is no event at all.
            producer.send(new ProducerRecord<>(CHECKPOINTS, checkpoint("a/b", 1, true, adapter).encode())).get();
            producer.send(new ProducerRecord<>(CHECKPOINTS, "{not json".getBytes(StandardCharsets.UTF_8))).get();
        }
        long retriesBefore = service.merges().retries();
        try (StoreBlocked blocked = new StoreBlocked()) {
            send(checkpoint("j-disk", 2, true, adapter));
            awaitRetries(retriesBefore + 2);
            given().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
        }
        MergedModelEvent merged = mergedEvents("j-disk", 1).getFirst();
        assertTrue(merged.verification().passed());
        assertEquals(0, count(readFor(FAILURES, Duration.ofSeconds(2)), "j-disk"), "a transient failure is never announced");

        List<byte[]> letters = readUntil("loraflow.models.dead-letters", seen -> seen.size() >= 2, Duration.ofMinutes(1));
        StringBuilder reasons = new StringBuilder();
        for (byte[] letter : letters) {
            reasons.append(JSON.readTree(letter).path("reason").asText()).append('\n');
        }
        assertTrue(reasons.toString().contains("job_id \"a/b\" must be"), reasons.toString());
        assertTrue(reasons.toString().contains("not valid JSON"), reasons.toString());
        assertTrue(service.merges().deadLettered() >= 2);
        given().get("/q/health/live").then().statusCode(200).body("checks.find { it.name == 'loop' }.status", equalTo("UP"));
    }

    @Test
    void aPartitionGoesToAnotherReplicaOnlyOnceTheCheckpointInHandIsLeftAndThatCheckpointIsAnnouncedOnce() throws Exception {
        awaitReady();
        CheckpointEvent checkpoint = checkpoint("j-handover", 2, true, storeAdapter(61));
        TopicPartition partition = new TopicPartition(CHECKPOINTS, 0);
        // A second replica of the merger, as far as the group can tell: its client id sorts before the merger's
        // (kafka-consumer-checkpoints-…), so that the range assignment gives it partitions 0 and 1.
        Properties replica = client(PlatformUsers.MERGER);
        replica.put(ConsumerConfig.GROUP_ID_CONFIG, PlatformUsers.MERGER_GROUP);
        replica.put(ConsumerConfig.CLIENT_ID_CONFIG, "a-second-replica");
        replica.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, RangeAssignor.class.getName());
        replica.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (StoreBlocked blocked = new StoreBlocked()) {
            // The merger takes the checkpoint up and keeps it in hand: the store fails, the merge is retried.
            long retriesBefore = service.merges().retries();
            Properties producerConfig = client(PlatformUsers.TRAINER);
            producerConfig.put(ProducerConfig.ACKS_CONFIG, "all");
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerConfig, new ByteArraySerializer(),
                    new ByteArraySerializer())) {
                producer.send(new ProducerRecord<>(CHECKPOINTS, partition.partition(),
                        checkpoint.jobId().getBytes(StandardCharsets.UTF_8), checkpoint.encode())).get();
            }
            awaitRetries(retriesBefore + 1);
            try (KafkaConsumer<byte[], byte[]> second = new KafkaConsumer<>(replica, new ByteArrayDeserializer(),
                    new ByteArrayDeserializer())) {
                second.subscribe(List.of(CHECKPOINTS));
                long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
                while (!second.assignment().contains(partition)) {
                    assertTrue(System.nanoTime() < deadline, "the second replica was not given " + partition
                            + "; it holds " + second.assignment());
                    second.poll(Duration.ofMillis(100));
                }
                // The store works again while the partition is the other replica's: the merger, which gave the
                // checkpoint up with the partition, neither tries it again nor announces it.
                long retriesAtHandover = service.merges().retries();
                blocked.close();
                assertEquals(0, count(readFor(MERGED, Duration.ofSeconds(8)), checkpoint.jobId()),
                        "announced by a replica that no longer held its partition");
                assertEquals(retriesAtHandover, service.merges().retries(), "tried again after the handover");
            }
        }
        // The partition back, the merger takes the checkpoint up from the committed offset: announced once.
        mergedEvents(checkpoint.jobId(), 1);
        assertEquals(1, count(readFor(MERGED, Duration.ofSeconds(3)), checkpoint.jobId()), "announced exactly once");
    }

    /** The store cannot take a new artifact while open: its staging directory is gone, a file in its place. */
    private static final class StoreBlocked implements AutoCloseable {
        private final Path staging = MergerProfile.ROOT.resolve("store").resolve("tmp");
        private final Path aside = MergerProfile.ROOT.resolve("store-tmp-aside");
        private boolean blocked;

        StoreBlocked() throws IOException {
            Files.move(staging, aside);
            Files.writeString(staging, "not a directory");
            blocked = true;
        }

        @Override
        public void close() throws IOException {
            if (blocked) {
                Files.delete(staging);
                Files.move(aside, staging);
                blocked = false;
            }
        }
    }

    private void awaitRetries(long retries) {
        long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
        while (service.merges().retries() < retries) {
            assertTrue(System.nanoTime() < deadline, "the merge was not retried");
            sleep(100);
        }
    }

    private static List<Path> artifacts() throws IOException {
        try (Stream<Path> entries = Files.list(MergerProfile.ROOT.resolve("store").resolve("sha256"))) {
            return entries.toList();
        }
    }
}
