package dev.loraflow.serving.messaging;

import static dev.loraflow.serving.messaging.AnnouncedAdaptersResource.checkpoint;
import static dev.loraflow.serving.messaging.Announcements.CHECKPOINTS_TOPIC;
import static dev.loraflow.serving.messaging.Announcements.await;
import static dev.loraflow.serving.messaging.Announcements.metric;
import static dev.loraflow.serving.messaging.Announcements.record;
import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.inference.TinyModels;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.LocalArtifactStore;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/** Adapters from checkpoint events on a real broker: each job's newest, of the served base only, answering as the Java model does. */
@QuarkusTest
@TestProfile(FollowAdaptersProfile.class)
class FollowAdaptersTest {

    private static final int[] PROMPT = {3, 1, 4, 1, 5};

    private static List<Integer> expected(CausalLanguageModel model) {
        int[] tokens = Generator.generate(model, PROMPT,
                SamplingSettings.greedy(16, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID))).tokens();
        return Arrays.stream(tokens).boxed().toList();
    }

    private static List<Integer> complete(String model) {
        return given().contentType("application/json")
                .body("{\"model\": \"" + model + "\", \"prompt\": [3, 1, 4, 1, 5], \"max_tokens\": 16, \"temperature\": 0}")
                .post("/v1/completions").then().statusCode(200).extract().jsonPath()
                .getList("choices[0].token_ids", Integer.class);
    }

    private static List<String> served() {
        return given().get("/v1/models").then().statusCode(200).extract().jsonPath().getList("data.id", String.class);
    }

    private static double loads(String outcome) {
        return metric("loraflow_serving_adapter_loads_total", "outcome=\"" + outcome + "\"");
    }

    @Test
    void checkpointEventsLoadEachJobsNewestAdapterOfTheServedBase() throws Exception {
        await("j-old's adapter loaded at start", () -> served().contains("j-old"));
        assertEquals(expected(AnnouncedAdaptersResource.adapted(54)), complete("j-old"));
        assertNotEquals(expected(AnnouncedAdaptersResource.adapted(52)), expected(AnnouncedAdaptersResource.adapted(54)));

        LocalArtifactStore store = new LocalArtifactStore(
                Path.of(ConfigProvider.getConfig().getValue("loraflow.store.root", String.class)));
        ArtifactStore.Artifact live = AnnouncedAdaptersResource.storeAdapter(store, 57);
        double skipped = loads("skipped");
        double failed = loads("failed");
        String base = AnnouncedAdaptersResource.BASE;
        Announcements.publish(Announcements.client(PlatformUsers.TRAINER), List.of(
                record(CHECKPOINTS_TOPIC, "j-other", checkpoint("j-other", 1, "another-base", live, live.sha256()).encode()),
                record(CHECKPOINTS_TOPIC, "j-bad", checkpoint("j-bad", 1, base, live, "c".repeat(64)).encode()),
                record(CHECKPOINTS_TOPIC, "j-old", checkpoint("j-old", 3, base, live, live.sha256()).encode()),
                record(CHECKPOINTS_TOPIC, "j-live", checkpoint("j-live", 1, base, live, live.sha256()).encode())));
        await("j-live's adapter loaded", () -> served().contains("j-live"));
        assertEquals(expected(AnnouncedAdaptersResource.adapted(57)), complete("j-live"));
        await("another base and an older step skipped, a wrong digest failed",
                () -> loads("skipped") == skipped + 2 && loads("failed") == failed + 1);
        List<String> models = served();
        assertFalse(models.contains("j-other") || models.contains("j-bad"), models.toString());
        assertEquals(expected(AnnouncedAdaptersResource.adapted(54)), complete("j-old"), "step 3 came after step 4: not taken");
        assertEquals(expected(TinyModels.model(TinyModels.GPT2, AnnouncedAdaptersResource.BASE_SEED)), complete("tiny"));
    }
}
