package dev.loraflow.trainer;

import dev.loraflow.trainer.service.TrainingFixtures;
import io.quarkus.test.junit.QuarkusTestProfile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** A models root with the tiny base, a fresh artifact store, an API key, short waits. */
public class TrainerProfile implements QuarkusTestProfile {

    static final String API_KEY = "test-key-0123456789";
    /** Above Kafka's 1 MiB defaults, so that dead letters of records near the limit need the room made for them. */
    static final int MAX_RECORD_BYTES = 3 << 19;
    static final Path ROOT = createRoot();

    private static Path createRoot() {
        try {
            Path root = Files.createTempDirectory("loraflow-trainer-test-");
            TrainingFixtures.writeBase(root.resolve("models"));
            TrainingFixtures.writeFamilyBases(root.resolve("models"));
            return root;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public Map<String, String> getConfigOverrides() {
        return Map.of(
                "loraflow.models.root", ROOT.resolve("models").toString(),
                "loraflow.store.root", ROOT.resolve("store").toString(),
                "loraflow.api-keys", API_KEY,
                "loraflow.trainer.unknown-job-grace", "3s",
                "loraflow.trainer.max-record-bytes", Integer.toString(MAX_RECORD_BYTES));
    }
}
