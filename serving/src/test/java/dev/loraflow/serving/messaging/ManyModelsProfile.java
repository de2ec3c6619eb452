package dev.loraflow.serving.messaging;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.List;
import java.util.Map;

/** Every announced model followed, each under its own name; the default name is tiny. */
public class ManyModelsProfile implements QuarkusTestProfile {

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of("loraflow.serving.follow-models", "true", "loraflow.serving.follow-model-names", "*",
                "loraflow.serving.model.name", "tiny", "loraflow.serving.intra-op-threads", "1");
    }

    @Override
    public List<TestResourceEntry> testResources() {
        return List.of(new TestResourceEntry(ManyModelsResource.class));
    }
}
