package dev.loraflow.serving.rest;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItems;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import dev.loraflow.serving.TemporaryDirectoryResource;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.inference.TinyModels;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.junit.jupiter.api.Test;

/**
 * Two PEFT adapters on one un-merged base, loaded and unloaded over the admin API: requests naming them,
 * in flight together, are each answered as that adapter's merged model answers in Java.
 */
@QuarkusTest
@TestProfile(AdaptersApiTest.Profile.class)
class AdaptersApiTest {

    static final Gpt2Config CONFIG = TinyModels.GPT2;
    static final long BASE_SEED = 41;
    static final Map<String, Long> ADAPTER_SEEDS = Map.of("support-bot", 42L, "cipher", 43L);

    /** The base with the adapter of {@code seed}; merged, as the merger would serve it. */
    static CausalLanguageModel mergedJava(long seed) {
        CausalLanguageModel model = TinyModels.adapted(CONFIG, TinyModels.weights(CONFIG, BASE_SEED), seed);
        model.merge();
        return model;
    }

    public static class Profile implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("loraflow.api-keys", ServingProfile.API_KEY, "loraflow.serving.model.name", "base",
                    "loraflow.serving.intra-op-threads", "1");
        }

        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(UnmergedBaseAndAdapters.class));
        }
    }

    /** The base exported un-merged (LoRA inputs), and each adapter written as PEFT files. */
    public static class UnmergedBaseAndAdapters extends TemporaryDirectoryResource {
        @Override
        protected Map<String, String> start(Path dir) throws IOException {
            Map<String, float[]> weights = TinyModels.weights(CONFIG, BASE_SEED);
            Path onnx = TinyModels.export(TinyModels.adapted(CONFIG, weights, 42), weights, dir.resolve("base"),
                    OnnxExporter.Options.defaults().withUnmerged(true));
            for (var adapter : ADAPTER_SEEDS.entrySet()) {
                TinyModels.adapted(CONFIG, weights, adapter.getValue()).toPeftAdapter()
                        .write(dir.resolve(adapter.getKey()), DType.F32);
            }
            return Map.of("loraflow.serving.model.path", onnx.toString(), "loraflow.test.adapters", dir.toString(),
                    "loraflow.serving.admin-roots", dir.toString());
        }
    }

    @ConfigProperty(name = "loraflow.test.adapters")
    String adapters;

    @Test
    void adaptersLoadedAtRunTimeAnswerAsTheirMergedModelsAndLeaveCleanly() throws Exception {
        for (String name : ADAPTER_SEEDS.keySet()) {
            given().header("X-API-Key", ServingProfile.API_KEY).contentType("application/json")
                    .body(Map.of("name", name, "path", Path.of(adapters, name).toString())).post("/admin/adapters")
                    .then().statusCode(200);
        }
        given().get("/v1/models").then().statusCode(200).body("data.id", hasItems("base", "support-bot", "cipher"));

        int[] prompt = OpenAiApiTest.bytes("LoRA: ");
        SamplingSettings greedy = SamplingSettings.greedy(12, Set.of(ByteLevelTokenizerJson.END_OF_TEXT_ID));
        List<String> names = List.of("support-bot", "cipher", "support-bot", "cipher", "base");
        List<CompletableFuture<List<Integer>>> answers = new ArrayList<>();
        for (String name : names) {
            answers.add(CompletableFuture.supplyAsync(() -> given().contentType("application/json")
                    .body(Map.of("model", name, "prompt", OpenAiApiTest.list(prompt), "max_tokens", 12, "temperature", 0))
                    .post("/v1/completions").then().statusCode(200).body("model", equalTo(name))
                    .extract().jsonPath().getList("choices[0].token_ids", Integer.class)));
        }
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            CausalLanguageModel reference = name.equals("base")
                    ? CausalLanguageModel.create(CONFIG, TinyModels.weights(CONFIG, BASE_SEED), null, 0)
                    : mergedJava(ADAPTER_SEEDS.get(name));
            assertEquals(OpenAiApiTest.list(Generator.generate(reference, prompt, greedy).tokens()), answers.get(i).get(), name);
        }
        assertNotEquals(answers.get(0).get(), answers.get(1).get(), "the two adapters answer differently");

        given().header("X-API-Key", ServingProfile.API_KEY).delete("/admin/adapters/cipher").then().statusCode(204);
        given().contentType("application/json").body(Map.of("model", "cipher", "prompt", "x", "max_tokens", 2))
                .post("/v1/completions").then().statusCode(404).body("error.code", equalTo("model_not_found"));
        given().contentType("application/json").body(Map.of("model", "support-bot", "prompt", "x", "max_tokens", 2))
                .post("/v1/completions").then().statusCode(200);
        given().delete("/admin/adapters/support-bot").then().statusCode(401);
    }
}
