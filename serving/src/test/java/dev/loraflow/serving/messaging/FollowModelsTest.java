package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.MODELS_TOPIC;
import static dev.loraflow.serving.messaging.Announcements.await;
import static dev.loraflow.serving.messaging.Announcements.event;
import static dev.loraflow.serving.messaging.Announcements.metric;
import static dev.loraflow.serving.messaging.Announcements.recordOutcome;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.serving.messaging.Announcements.Release;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import io.restassured.response.Response;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Serving follows {@code loraflow.models.merged} on a real broker: it finds the newest verified model at
 * start, keeps serving through bad events, and swaps under load without failing a request.
 */
@QuarkusTest
@TestProfile(FollowModelsProfile.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FollowModelsTest {

    private static final String MODEL = AnnouncedModelsResource.MODEL;
    private static final String SWAPS = "loraflow_serving_model_swaps_total";
    private static final int[] PROMPT = {5, 6, 7, 8, 9};
    private static final String REQUEST = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7, 8, 9], \"max_tokens\": 24, \"temperature\": 0}";

    private static LocalArtifactStore store() throws IOException {
        return new LocalArtifactStore(Path.of(ConfigProvider.getConfig().getValue("loraflow.store.root", String.class)));
    }

    private static Release release(String which) {
        return Release.decode(ConfigProvider.getConfig().getValue("loraflow.test.release-" + which, String.class));
    }

    private static List<Integer> expected(long seed) {
        int[] tokens = Generator.generate(Announcements.model(seed), PROMPT,
                SamplingSettings.greedy(24, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID))).tokens();
        return Arrays.stream(tokens).boxed().toList();
    }

    /** The base model's entry in /v1/models. */
    private static JsonPath served() {
        return given().get("/v1/models").then().statusCode(200).extract().jsonPath().setRootPath("data[0]");
    }

    private static long announcedVersion() {
        JsonPath served = served();
        return served.get("announced") == null ? -1 : served.getLong("announced.model_version");
    }

    private static double events(String outcome) {
        return metric(SWAPS, "outcome=\"" + outcome + "\"", "trigger=\"event\"");
    }

    /** As the merger announces: each event's outcome recorded in the store, then published as user merger. */
    private static void publish(byte[]... values) throws IOException {
        List<ProducerRecord<byte[], byte[]>> records = Arrays.stream(values)
                .map(value -> Announcements.record(MODELS_TOPIC, MODEL, value)).toList();
        Announcements.recordOutcomes(store(), records);
        Announcements.publish(Announcements.client(PlatformUsers.MERGER), records);
    }

    /** Published by an authorised client (user merger) without the merger's record in the store, or against another one. */
    private static void publishUnrecorded(byte[]... values) {
        Announcements.publish(Announcements.client(PlatformUsers.MERGER), Arrays.stream(values)
                .map(value -> Announcements.record(MODELS_TOPIC, MODEL, value)).toList());
    }

    private static List<Integer> complete() {
        return given().contentType("application/json").body(REQUEST).post("/v1/completions").then().statusCode(200)
                .extract().jsonPath().getList("choices[0].token_ids", Integer.class);
    }

    @Test
    @Order(1)
    void atStartTheNewestVerifiedModelIsServedWithoutManualSteps() {
        await("ready", () -> given().get("/q/health/ready").statusCode() == 200);
        JsonPath served = served();
        assertEquals("tiny", served.getString("id"));
        assertEquals(MODEL, served.getString("announced.model"));
        // Version 9 is newer but its graph does not match its SHA-256; 99 is another model's.
        assertEquals(7, served.getLong("announced.model_version"));
        assertEquals(expected(AnnouncedModelsResource.SEED_B), complete());
        assertEquals(1, events("failed"));
        assertEquals(1, events("malformed"));
        assertEquals(1, events("loaded"));
        String gauge = given().get("/q/metrics").then().extract().asString();
        assertTrue(gauge.contains("loraflow_serving_model_version{model=\"tiny\"} 7.0"), gauge);
    }

    @Test
    @Order(2)
    void badEventsLeaveTheModelServingAndAreCounted() throws Exception {
        String version = served().getString("version");
        long announced = announcedVersion();
        double failed = events("failed");
        double malformed = events("malformed");
        double skipped = events("skipped");
        Release a = release("a");
        Path outside = java.nio.file.Files.createTempDirectory("outside-the-store");
        publish(event(MODEL, 10, new Release(a.onnxUri(), a.onnxSha256(), Announcements.SHA_ZERO, a.mergedUri(),
                        a.mergedSha256())).encode(),
                "not json at all".getBytes(StandardCharsets.UTF_8),
                "{\"schema\": \"loraflow.models.merged\", \"version\": 1, \"model\": \"tiny-job\"}".getBytes(StandardCharsets.UTF_8),
                event(MODEL, 11, new Release(URI.create(a.onnxUri()).resolve("../" + "e".repeat(64) + "/").toString(),
                        "e".repeat(64), a.onnxFileSha256(), a.mergedUri(), a.mergedSha256())).encode(),
                event(MODEL, 12, new Release(outside.toUri().toString(), a.onnxSha256(), a.onnxFileSha256(),
                        a.mergedUri(), a.mergedSha256())).encode(),
                event(MODEL, 13, new Release(a.onnxUri(), a.onnxSha256(), a.onnxFileSha256(), a.mergedUri(),
                        a.onnxSha256())).encode(),
                event(MODEL, 7, release("b")).encode());
        await("four failures, two malformed records and a repeat counted",
                () -> events("failed") == failed + 4 && events("malformed") == malformed + 2 && events("skipped") == skipped + 1);
        assertEquals(version, served().getString("version"));
        assertEquals(announced, announcedVersion());
        given().get("/q/health/ready").then().statusCode(200);
        assertEquals(expected(AnnouncedModelsResource.SEED_B), complete());

        // The consumer goes on after all of that.
        publish(event(MODEL, 14, a).encode());
        await("version 14 served", () -> announcedVersion() == 14);
        assertEquals(expected(AnnouncedModelsResource.SEED_A), complete());
    }

    @Test
    @Order(3)
    void repeatedSwapsUnderLoadFailNoRequestAndEachAnswerIsWhollyOneVersions() throws Exception {
        List<Integer> expectedA = expected(AnnouncedModelsResource.SEED_A);
        List<Integer> expectedB = expected(AnnouncedModelsResource.SEED_B);
        assertNotEquals(expectedA, expectedB);
        Map<String, List<Integer>> expectedByVersion = new ConcurrentHashMap<>();
        JsonPath before = served();
        long announced = before.getLong("announced.model_version");
        expectedByVersion.put(before.getString("version"), announced == 7 ? expectedB : expectedA);

        AtomicBoolean running = new AtomicBoolean(true);
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        ConcurrentLinkedQueue<JsonPath> answers = new ConcurrentLinkedQueue<>();
        ExecutorService clients = Executors.newFixedThreadPool(4);
        List<Future<?>> loops = new ArrayList<>();
        for (int c = 0; c < 4; c++) {
            loops.add(clients.submit(() -> {
                while (running.get()) {
                    Response response = given().contentType("application/json").body(REQUEST).post("/v1/completions");
                    if (response.statusCode() != 200) {
                        failures.add(response.statusCode() + " " + response.asString());
                    } else {
                        answers.add(response.jsonPath());
                    }
                }
            }));
        }
        try {
            for (int swap = 1; swap <= 4; swap++) {
                Thread.sleep(300);
                long next = announced + swap;
                boolean toB = swap % 2 == 1;
                publish(event(MODEL, next, release(toB ? "b" : "a")).encode());
                await("version " + next + " served", () -> announcedVersion() == next);
                expectedByVersion.put(served().getString("version"), toB ? expectedB : expectedA);
            }
            Thread.sleep(300);
        } finally {
            running.set(false);
            for (Future<?> loop : loops) {
                loop.get(60, TimeUnit.SECONDS);
            }
            clients.shutdown();
        }
        assertEquals(List.of(), List.copyOf(failures));
        assertTrue(answers.size() > 20, "requests answered: " + answers.size());
        Set<String> seen = ConcurrentHashMap.newKeySet();
        for (JsonPath answer : answers) {
            String version = answer.getString("system_fingerprint").substring("loraflow-v".length());
            assertTrue(expectedByVersion.containsKey(version), "an answer of version " + version + ", not one of "
                    + expectedByVersion.keySet());
            assertEquals(expectedByVersion.get(version), answer.getList("choices[0].token_ids", Integer.class),
                    "answer of version " + version);
            seen.add(version);
        }
        assertTrue(seen.size() >= 4, "answers came from " + seen);
    }

    @Test
    @Order(4)
    void eventsWhoseLineageIsNotTheMergersRecordAreIgnoredAndDoNotBlockLaterVersions() throws Exception {
        String version = served().getString("version");
        long announced = announcedVersion();
        double unverified = events("unverified");
        double loaded = events("loaded");
        Release a = release("a");
        Release b = release("b");
        // A forged announcement of a real artifact with a huge version and no merge behind it; the merger's
        // record of a version says artifact b, its event says a; a version whose merge failed; another model.
        long huge = Long.MAX_VALUE / 2;
        recordOutcome(store(), event(MODEL, announced + 2, b), "merged");
        recordOutcome(store(), event(MODEL, announced + 3, a), "failed");
        publishUnrecorded(event(MODEL, huge, a).encode(), event(MODEL, announced + 2, a).encode(),
                event(MODEL, announced + 3, a).encode());
        Announcements.publish(Announcements.client(PlatformUsers.MERGER),
                List.of(Announcements.record(MODELS_TOPIC, "not-followed", event("not-followed", huge, a).encode())));
        await("three unverified events counted", () -> events("unverified") == unverified + 3);
        assertEquals(version, served().getString("version"));
        assertEquals(announced, announcedVersion());

        // A real version after them, lower than the forged one, is still taken.
        long next = announced + 4;
        publish(event(MODEL, next, a).encode());
        await("version " + next + " served", () -> announcedVersion() == next);
        assertEquals(loaded + 1, events("loaded"));
        assertEquals(expected(AnnouncedModelsResource.SEED_A), complete());
    }

    @Test
    @Order(5)
    void theAdminApiLoadsAMergersGraphArtifactWithItsMergedDirectory() {
        Release b = release("b");
        Path onnx = Path.of(URI.create(b.onnxUri())).resolve("model.onnx");
        Path merged = Path.of(URI.create(b.mergedUri()));
        given().header("X-API-Key", FollowModelsProfile.API_KEY).contentType("application/json")
                .body("{\"path\": \"" + onnx + "\"}").post("/admin/models").then().statusCode(422)
                .body("error.message", containsString("config.json"));
        given().header("X-API-Key", FollowModelsProfile.API_KEY).contentType("application/json")
                .body("{\"path\": \"" + onnx + "\", \"sha256\": \"" + b.onnxFileSha256() + "\", \"config_dir\": \""
                        + merged + "\"}").post("/admin/models").then().statusCode(200);
        assertNull(served().get("announced"), "loaded by the admin API, not from an event");
        assertEquals(expected(AnnouncedModelsResource.SEED_B), complete());
        assertEquals(1, metric(SWAPS, "outcome=\"loaded\"", "trigger=\"admin\""));
        assertEquals(1, metric(SWAPS, "outcome=\"failed\"", "trigger=\"admin\""));
    }
}
