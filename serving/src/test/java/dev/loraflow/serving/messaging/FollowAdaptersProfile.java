package dev.loraflow.serving.messaging;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.List;
import java.util.Map;

/** An un-merged base served from its file; adapters followed from checkpoint events of that base. */
public class FollowAdaptersProfile implements QuarkusTestProfile {

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of("loraflow.serving.follow-adapters", "true",
                "loraflow.serving.adapter-base-model", AnnouncedAdaptersResource.BASE,
                "loraflow.serving.adapter-base-sha256", AnnouncedAdaptersResource.BASE_SHA256,
                "loraflow.serving.model.name", "tiny",
                "loraflow.serving.intra-op-threads", "1");
    }

    @Override
    public List<TestResourceEntry> testResources() {
        return List.of(new TestResourceEntry(AnnouncedAdaptersResource.class));
    }
}
