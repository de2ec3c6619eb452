package dev.loraflow.merger;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.Map;

/**
 * {@link MergerProfile}'s models and store, the merger publishing an int4 graph alone ({@code loraflow.merger.graphs=int4},
 * no F32 graph, the merged model in the base's dtype), held to a strict loss bound: published only when its held-out
 * loss does not rise above the F32 model's.
 */
public class MergerQuantizedOnlyProfile implements QuarkusTestProfile {

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of(
                "loraflow.models.root", MergerProfile.ROOT.resolve("models").toString(),
                "loraflow.store.root", MergerProfile.ROOT.resolve("store").toString(),
                "loraflow.merger.work-dir", MergerProfile.ROOT.resolve("int4-work").toString(),
                "loraflow.api-keys", MergerProfile.API_KEY,
                "loraflow.merger.trigger", "final",
                "loraflow.merger.dtype", "base",
                "loraflow.merger.graphs", "int4",
                "loraflow.merger.quantize.verify-data", MergerProfile.ROOT.resolve(MergerProfile.HELD_OUT).toString(),
                "loraflow.merger.quantize.max-loss-increase.int4", "0");
    }
}
