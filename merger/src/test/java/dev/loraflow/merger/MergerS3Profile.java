package dev.loraflow.merger;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.Map;

/** {@link MergerProfile}'s models, with the artifact store in S3 (S3ServerTestResource sets loraflow.store.uri). */
public class MergerS3Profile implements QuarkusTestProfile {

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of(
                "loraflow.models.root", MergerProfile.ROOT.resolve("models").toString(),
                // Where a local store would be: the test checks that nothing is written there.
                "loraflow.store.root", MergerProfile.ROOT.resolve("s3-test-local-store").toString(),
                "loraflow.merger.work-dir", MergerProfile.ROOT.resolve("s3-work").toString(),
                "loraflow.api-keys", MergerProfile.API_KEY,
                "loraflow.merger.trigger", "final");
    }
}
