package dev.loraflow.serving.rest;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.List;
import java.util.Map;

/** Model A served at start, an admin key, a small body limit, one ONNX Runtime thread. */
public class ServingProfile implements QuarkusTestProfile {

    static final String API_KEY = "test-admin-key";
    static final int MAX_BODY_BYTES = 65536;

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of("loraflow.api-keys", API_KEY, "loraflow.serving.model.name", "tiny",
                "loraflow.serving.max-body-bytes", Integer.toString(MAX_BODY_BYTES),
                "loraflow.serving.intra-op-threads", "1");
    }

    @Override
    public List<TestResourceEntry> testResources() {
        return List.of(new TestResourceEntry(TinyModelResource.class));
    }
}
