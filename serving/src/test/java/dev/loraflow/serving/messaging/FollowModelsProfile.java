package dev.loraflow.serving.messaging;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.List;
import java.util.Map;

/** No model configured: the service serves what is announced for tiny-job, under the name tiny. */
public class FollowModelsProfile implements QuarkusTestProfile {

    static final String API_KEY = "follow-test-key";

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of("loraflow.api-keys", API_KEY,
                "loraflow.serving.follow-models", "true",
                "loraflow.serving.follow-model-names", AnnouncedModelsResource.MODEL + ",a-model-never-announced",
                "loraflow.serving.model.name", "tiny",
                "loraflow.serving.intra-op-threads", "1");
    }

    @Override
    public List<TestResourceEntry> testResources() {
        return List.of(new TestResourceEntry(AnnouncedModelsResource.class));
    }
}
