package dev.loraflow.s3server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LocalS3ServerTest {

    @Test
    void servesTheBucketAndRefusesUnsignedWritesThenStopsAndCleansUp(@TempDir Path data) throws Exception {
        LocalS3Server server = LocalS3Server.start(LocalS3Server.Options.defaults().withBucket("models")
                .withDataDirectory(data));
        Path temporary = server.logFile().getParent();
        try (HttpClient http = HttpClient.newHttpClient()) {
            assertTrue(server.process().isAlive());
            assertTrue(Files.isDirectory(data.resolve("models")), "the bucket is a directory of the data directory");
            HttpResponse<String> unsigned = http.send(HttpRequest.newBuilder(server.endpoint().resolve("/models/key"))
                    .PUT(HttpRequest.BodyPublishers.ofString("x")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(403, unsigned.statusCode(), unsigned.body());
            assertFalse(Files.exists(data.resolve("models").resolve("key")));
            assertEquals("s3://models/artifacts", server.storeUri("artifacts"));
        } finally {
            server.close();
        }
        assertFalse(server.process().isAlive());
        assertFalse(Files.exists(temporary), "the server's temporary directory is deleted");
        assertTrue(Files.isDirectory(data.resolve("models")), "a data directory given outlives the server");
    }

    @Test
    void badOptionsAreRefusedBeforeAnythingStarts() {
        assertThrows(IllegalArgumentException.class, () -> LocalS3Server.Options.defaults().withBucket("B"));
        assertThrows(IllegalArgumentException.class, () -> LocalS3Server.Options.defaults().withKeys("short", "x"));
        assertThrows(IllegalArgumentException.class, () -> new LocalS3Server.Options("bucket", "loraflow-0123456789",
                "0123456789abcdef", Optional.empty(), java.time.Duration.ZERO));
    }
}
