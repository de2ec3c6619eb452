package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.Announcements.MODELS_TOPIC;
import static dev.loraflow.serving.messaging.Announcements.await;
import static dev.loraflow.serving.messaging.Announcements.event;
import static dev.loraflow.serving.messaging.Announcements.metric;
import static dev.loraflow.serving.messaging.Announcements.recordOutcome;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.serving.CompletionLoad;
import dev.loraflow.serving.messaging.Announcements.Release;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.path.json.JsonPath;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * Serving follows {@code loraflow.models.merged} on a real broker: it keeps serving through bad events, and
 * swaps under load without failing a request ({@link FollowModelsAtStartTest}: what it serves at start). Each
 * test announces the model it starts from, so they pass in any order.
 */
@QuarkusTest
@TestProfile(FollowModelsProfile.class)
class FollowModelsTest {

    private static final String MODEL = AnnouncedModelsResource.MODEL;
    private static final String SWAPS = "loraflow_serving_model_swaps_total";
    private static final int[] PROMPT = {5, 6, 7, 8, 9};
    private static final int ANSWERS_PER_VERSION = 5;
    /** The versions the tests announce, above the history's (up to 99); every test takes new ones. */
    private static final AtomicLong VERSIONS = new AtomicLong(100);
    private static final String REQUEST = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7, 8, 9], \"max_tokens\": 24, \"temperature\": 0}";

    private static LocalArtifactStore store() throws IOException {
        return new LocalArtifactStore(Path.of(ConfigProvider.getConfig().getValue("loraflow.store.root", String.class)));
    }

    private static Release release(String which) {
        return Release.decode(ConfigProvider.getConfig().getValue("loraflow.test.release-" + which, String.class));
    }

    static List<Integer> expected(long seed) {
        int[] tokens = Generator.generate(Announcements.model(seed), PROMPT,
                SamplingSettings.greedy(24, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID))).tokens();
        return Arrays.stream(tokens).boxed().toList();
    }

    /** The base model's entry in /v1/models. */
    static JsonPath served() {
        return given().get("/v1/models").then().statusCode(200).extract().jsonPath().setRootPath("data[0]");
    }

    private static long announcedVersion() {
        JsonPath served = served();
        return served.get("announced") == null ? -1 : served.getLong("announced.model_version");
    }

    static double events(String outcome) {
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

    static List<Integer> complete() {
        return given().contentType("application/json").body(REQUEST).post("/v1/completions").then().statusCode(200)
                .extract().jsonPath().getList("choices[0].token_ids", Integer.class);
    }

    /**
     * Announces {@code which} release ("a" or "b") as a version newer than any this class announced, waits
     * until it is served and returns the version: each test sets up the model it starts from, whatever ran before.
     */
    private static long serve(String which) throws IOException {
        long version = nextVersion();
        publish(event(MODEL, version, release(which)).encode());
        await("version " + version + " served", () -> announcedVersion() == version);
        return version;
    }

    /** A version above every one announced so far: the history's (up to 99) and the earlier tests'. */
    private static long nextVersion() {
        return VERSIONS.getAndIncrement();
    }

    /** A merger that publishes an int4 graph alone announces it as the graph to serve: it is loaded and answers. */
    @Test
    void aModelAnnouncedWithOnlyAnInt4GraphIsLoadedAndAnswers() throws Exception {
        Release int4 = release("a-int4");
        Path graph = store().open(URI.create(int4.onnxUri()), int4.onnxSha256()).resolve("model.onnx");
        assertTrue(new String(java.nio.file.Files.readAllBytes(graph), StandardCharsets.ISO_8859_1).contains("MatMulNBits"),
                "the release's linears are int4 blocks");
        long version = nextVersion();
        publish(Announcements.int4Event(MODEL, version, int4).encode());
        await("the int4 version served", () -> announcedVersion() == version);
        List<Integer> answer = complete();
        assertFalse(answer.isEmpty(), "the int4 graph answers");
        serve("a");
    }

    @Test
    void badEventsLeaveTheModelServingAndAreCounted() throws Exception {
        long announced = serve("b");
        String version = served().getString("version");
        double failed = events("failed");
        double malformed = events("malformed");
        double skipped = events("skipped");
        Release a = release("a");
        Path outside = java.nio.file.Files.createTempDirectory("outside-the-store");
        publish(event(MODEL, nextVersion(), new Release(a.onnxUri(), a.onnxSha256(), Announcements.SHA_ZERO,
                        a.mergedUri(), a.mergedSha256())).encode(),
                "not json at all".getBytes(StandardCharsets.UTF_8),
                "{\"schema\": \"loraflow.models.merged\", \"version\": 1, \"model\": \"tiny-job\"}".getBytes(StandardCharsets.UTF_8),
                event(MODEL, nextVersion(), new Release(URI.create(a.onnxUri()).resolve("../" + "e".repeat(64) + "/").toString(),
                        "e".repeat(64), a.onnxFileSha256(), a.mergedUri(), a.mergedSha256())).encode(),
                event(MODEL, nextVersion(), new Release(outside.toUri().toString(), a.onnxSha256(), a.onnxFileSha256(),
                        a.mergedUri(), a.mergedSha256())).encode(),
                event(MODEL, nextVersion(), new Release(a.onnxUri(), a.onnxSha256(), a.onnxFileSha256(), a.mergedUri(),
                        a.onnxSha256())).encode(),
                event(MODEL, announced, release("b")).encode());
        await("four failures, two malformed records and a repeat counted",
                () -> events("failed") == failed + 4 && events("malformed") == malformed + 2 && events("skipped") == skipped + 1);
        assertEquals(version, served().getString("version"));
        assertEquals(announced, announcedVersion());
        given().get("/q/health/ready").then().statusCode(200);
        assertEquals(expected(AnnouncedModelsResource.SEED_B), complete());

        // The consumer goes on after all of that.
        serve("a");
        assertEquals(expected(AnnouncedModelsResource.SEED_A), complete());
    }

    @Test
    void repeatedSwapsUnderLoadFailNoRequestAndEachAnswerIsWhollyOneVersions() throws Exception {
        List<Integer> expectedA = expected(AnnouncedModelsResource.SEED_A);
        List<Integer> expectedB = expected(AnnouncedModelsResource.SEED_B);
        assertNotEquals(expectedA, expectedB);
        serve("b");
        Map<String, List<Integer>> expectedByVersion = new ConcurrentHashMap<>();
        String version = served().getString("version");
        expectedByVersion.put(version, expectedB);

        CompletionLoad load = CompletionLoad.start(4, REQUEST);
        try (load) {
            for (int swap = 1; swap <= 4; swap++) {
                load.awaitAnswersOf(version, ANSWERS_PER_VERSION);
                boolean toB = swap % 2 == 0;
                serve(toB ? "b" : "a");
                version = served().getString("version");
                expectedByVersion.put(version, toB ? expectedB : expectedA);
            }
            load.awaitAnswersOf(version, ANSWERS_PER_VERSION);
        }
        load.assertEachAnswerWhollyOneVersion(expectedByVersion, 5 * ANSWERS_PER_VERSION, 5);
    }

    @Test
    void eventsWhoseLineageIsNotTheMergersRecordAreIgnoredAndDoNotBlockLaterVersions() throws Exception {
        long announced = serve("b");
        String version = served().getString("version");
        double unverified = events("unverified");
        double loaded = events("loaded");
        Release a = release("a");
        Release b = release("b");
        // A forged announcement of a real artifact with a huge version and no merge behind it; the merger's
        // record of a version says artifact b, its event says a; a version whose merge failed; another model.
        long huge = Long.MAX_VALUE / 2;
        long recordSaysB = nextVersion();
        long mergeFailed = nextVersion();
        recordOutcome(store(), event(MODEL, recordSaysB, b), "merged");
        recordOutcome(store(), event(MODEL, mergeFailed, a), "failed");
        publishUnrecorded(event(MODEL, huge, a).encode(), event(MODEL, recordSaysB, a).encode(),
                event(MODEL, mergeFailed, a).encode());
        Announcements.publish(Announcements.client(PlatformUsers.MERGER),
                List.of(Announcements.record(MODELS_TOPIC, "not-followed", event("not-followed", huge, a).encode())));
        await("three unverified events counted", () -> events("unverified") == unverified + 3);
        assertEquals(version, served().getString("version"));
        assertEquals(announced, announcedVersion());

        // A real version after them, lower than the forged one, is still taken.
        serve("a");
        assertEquals(loaded + 1, events("loaded"));
        assertEquals(expected(AnnouncedModelsResource.SEED_A), complete());
    }

    @Test
    void theAdminApiLoadsAMergersGraphArtifactWithItsMergedDirectory() {
        double loaded = metric(SWAPS, "outcome=\"loaded\"", "trigger=\"admin\"");
        double failed = metric(SWAPS, "outcome=\"failed\"", "trigger=\"admin\"");
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
        assertEquals(loaded + 1, metric(SWAPS, "outcome=\"loaded\"", "trigger=\"admin\""));
        assertEquals(failed + 1, metric(SWAPS, "outcome=\"failed\"", "trigger=\"admin\""));
    }
}
