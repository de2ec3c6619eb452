package dev.loraflow.platform.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.s3server.LocalS3Server;
import dev.loraflow.s3server.S3ServerExtension;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.extension.RegisterExtension;
import software.amazon.awssdk.regions.Region;

/** What only the S3 store does: multipart uploads, ranged downloads, the bounded read cache, its configuration. */
class S3ArtifactStoreTest {

    @RegisterExtension
    static final S3ServerExtension S3 = new S3ServerExtension();

    private static final long PART = S3ArtifactStore.Settings.MIN_PART_SIZE;

    @TempDir
    Path temp;

    private S3ArtifactStore store(String prefix, String cache, long cacheMax) throws IOException {
        LocalS3Server server = S3.server();
        return new S3ArtifactStore(new S3ArtifactStore.Settings(server.bucket(), prefix, Optional.of(server.endpoint()),
                Region.US_EAST_1, true, ArtifactStoreContractTest.credentials(server), temp.resolve(cache), cacheMax,
                PART, 4));
    }

    private Path randomDirectory(String name, long bytes, int seed) throws IOException {
        Path directory = Files.createDirectories(temp.resolve(name));
        byte[] content = new byte[(int) bytes];
        new Random(seed).nextBytes(content);
        Files.write(directory.resolve("model.bin"), content);
        Files.writeString(directory.resolve("config.json"), "{\"seed\": " + seed + "}");
        return directory;
    }

    @Test
    void aFileOfMoreThanTwoPartsGoesUpInPartsAndComesDownInRanges() throws IOException {
        Path source = randomDirectory("big", 2 * PART + PART / 2 + 17, 1);
        ArtifactStore.Artifact artifact;
        try (S3ArtifactStore writer = store("multipart", "cache-w", 1L << 30)) {
            artifact = writer.putDirectory(source);
            assertEquals(1, writer.transfers().multipartUploads(), "model.bin is one multipart upload");
            assertEquals(3, writer.transfers().partsUploaded(), "of three parts");
        }
        Path stored = S3.server().dataDirectory().resolve(S3.server().bucket()).resolve("multipart/sha256")
                .resolve(artifact.sha256()).resolve("model.bin");
        assertArrayEquals(Files.readAllBytes(source.resolve("model.bin")), Files.readAllBytes(stored),
                "the object is the file, parts in order");
        try (S3ArtifactStore reader = store("multipart", "cache-r", 1L << 30)) {
            Path opened = reader.open(artifact.uri(), artifact.sha256());
            assertEquals(3, reader.transfers().rangedGets(), "model.bin came down in three ranges");
            assertArrayEquals(Files.readAllBytes(source.resolve("model.bin")), Files.readAllBytes(opened.resolve("model.bin")));
            assertEquals(opened, reader.open(artifact.uri(), artifact.sha256()));
            assertEquals(1, reader.transfers().cacheHits(), "the second open is served from the cache");
            assertEquals(3, reader.transfers().rangedGets(), "without a download");
        }
    }

    @Test
    void theCacheKeepsTheMostRecentlyOpenedArtifactsWithinItsBound() throws IOException {
        long size = 3L << 20;
        ArtifactStore.Artifact[] artifacts = new ArtifactStore.Artifact[3];
        try (S3ArtifactStore writer = store("cache", "cache-w", 1L << 30)) {
            for (int i = 0; i < 3; i++) {
                artifacts[i] = writer.putDirectory(randomDirectory("a" + i, size, 10 + i));
            }
        }
        long bound = size * 2 + size / 2; // room for two
        try (S3ArtifactStore reader = store("cache", "cache-r", bound)) {
            Path first = reader.open(artifacts[0].uri(), artifacts[0].sha256());
            reader.open(artifacts[1].uri(), artifacts[1].sha256());
            reader.open(artifacts[0].uri(), artifacts[0].sha256()); // the first is now the most recent
            Path third = reader.open(artifacts[2].uri(), artifacts[2].sha256());
            assertTrue(reader.cacheBytes() <= bound, reader.cacheBytes() + " <= " + bound);
            assertEquals(1, reader.transfers().cacheEvictions());
            assertTrue(Files.isDirectory(first) && Files.isDirectory(third));
            assertFalse(Files.exists(temp.resolve("cache-r").resolve(artifacts[1].sha256())),
                    "the least recently opened went");
            Path again = reader.open(artifacts[1].uri(), artifacts[1].sha256());
            assertEquals(artifacts[1].sha256(), dev.loraflow.core.io.Sha256.of(ArtifactManifest.of(again)
                    .getBytes(java.nio.charset.StandardCharsets.UTF_8)), "an evicted artifact comes back on demand");
        }
        try (S3ArtifactStore tiny = store("cache", "cache-tiny", 0)) {
            Path only = tiny.open(artifacts[2].uri(), artifacts[2].sha256());
            assertTrue(Files.isDirectory(only), "an artifact larger than the bound is still served, alone");
        }
    }

    @Test
    void aCachedCopyChangedOnDiskIsFetchedAgain() throws IOException {
        ArtifactStore.Artifact artifact;
        try (S3ArtifactStore writer = store("recache", "cache-w", 1L << 30)) {
            artifact = writer.putDirectory(randomDirectory("a", 1000, 3));
        }
        try (S3ArtifactStore reader = store("recache", "cache-r", 1L << 30)) {
            Path opened = reader.open(artifact.uri(), artifact.sha256());
            Files.writeString(opened.resolve("config.json"), "{\"seed\": 4}");
            Path again = reader.open(artifact.uri(), artifact.sha256());
            assertEquals("{\"seed\": 3}", Files.readString(again.resolve("config.json")));
            assertEquals(0, reader.transfers().cacheHits());
        }
    }

    @Test
    void theLocationAndTheEnvironmentConfigureTheStore() throws IOException {
        Map<String, String> environment = Map.of("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", "AWS_REGION", "eu-west-1",
                "LORAFLOW_STORE_CACHE_DIR", temp.resolve("c").toString(), "LORAFLOW_STORE_CACHE_MAX_BYTES", "3g",
                "LORAFLOW_STORE_S3_PART_SIZE", "16m");
        S3ArtifactStore.Settings settings = ArtifactStores.s3Settings("s3://models/team/a",
                names -> names.stream().map(environment::get).filter(java.util.Objects::nonNull).findFirst());
        assertEquals("models", settings.bucket());
        assertEquals("team/a", settings.prefix());
        assertEquals(Optional.of(URI.create("http://127.0.0.1:9000")), settings.endpoint());
        assertEquals(Region.EU_WEST_1, settings.region());
        assertTrue(settings.pathStyle(), "an endpoint of its own means path-style by default");
        assertEquals(3L << 30, settings.cacheMaxBytes());
        assertEquals(16L << 20, settings.partSize());

        S3ArtifactStore.Settings query = ArtifactStores.s3Settings(
                "s3://models?endpoint=https%3A%2F%2Fstorage.googleapis.com&region=auto&path-style=false",
                names -> Optional.empty());
        assertEquals("", query.prefix());
        assertEquals(Optional.of(URI.create("https://storage.googleapis.com")), query.endpoint());
        assertFalse(query.pathStyle());
        S3ArtifactStore.Settings aws = ArtifactStores.s3Settings("s3://models/x", names -> Optional.empty());
        assertEquals(Optional.empty(), aws.endpoint());
        assertFalse(aws.pathStyle());

        for (String bad : List.of("s3://", "s3://UPPER/x", "s3://models/x?colour=red", "http://example.com/x",
                "s3://models/x?path-style=maybe")) {
            assertThrows(IllegalArgumentException.class, () -> ArtifactStores.open(bad, names -> Optional.empty()), bad);
        }
        assertThrows(IllegalArgumentException.class, () -> ArtifactStores.s3Settings("s3://models/x",
                names -> names.contains("LORAFLOW_STORE_S3_PART_SIZE") ? Optional.of("1m") : Optional.empty()),
                "parts under 5 MiB");
        assertInstanceOf(LocalArtifactStore.class, ArtifactStores.open(temp.resolve("plain").toString(), n -> Optional.empty()));
        assertInstanceOf(LocalArtifactStore.class, ArtifactStores.open(temp.resolve("uri").toUri().toString(),
                n -> Optional.empty()));
    }
}
