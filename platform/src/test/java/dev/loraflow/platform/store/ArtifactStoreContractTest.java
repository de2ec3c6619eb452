package dev.loraflow.platform.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.s3server.LocalS3Server;
import dev.loraflow.s3server.S3ServerExtension;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * What every artifact store promises ({@link ArtifactStore}), checked the same way on a local directory and on
 * a real S3 API server (S3Proxy, started by {@link S3ServerExtension}).
 */
class ArtifactStoreContractTest {

    @RegisterExtension
    static final S3ServerExtension S3 = new S3ServerExtension();

    @TempDir
    Path temp;

    private final List<AutoCloseable> opened = new ArrayList<>();

    /** One store location, and what a test does behind the store's back there. */
    interface Backend {
        /** A fresh store on the location, with its own (empty) read cache. */
        ArtifactStore store() throws IOException;

        /** Replaces a stored file's bytes, as a faulty disk or a stray writer would. */
        void overwrite(ArtifactStore.Artifact artifact, String file, byte[] bytes) throws IOException;

        /** A file of artifact {@code digest} written as a writer that crashed before the manifest would leave it. */
        void writeWithoutManifest(String digest, String file, byte[] bytes) throws IOException;
    }

    static Stream<String> backends() {
        return Stream.of("local", "s3");
    }

    private Backend backend(String kind) throws IOException {
        Path root = Files.createTempDirectory(temp, kind);
        return switch (kind) {
            case "local" -> new Backend() {
                @Override
                public ArtifactStore store() throws IOException {
                    return new LocalArtifactStore(root);
                }

                @Override
                public void overwrite(ArtifactStore.Artifact artifact, String file, byte[] bytes) throws IOException {
                    Files.write(Path.of(artifact.uri()).resolve(file), bytes);
                }

                @Override
                public void writeWithoutManifest(String digest, String file, byte[] bytes) throws IOException {
                    Path staging = Files.createDirectories(root.resolve("tmp").resolve(digest));
                    Files.write(staging.resolve(file), bytes);
                }
            };
            case "s3" -> {
                LocalS3Server server = S3.server();
                String prefix = "contract/" + root.getFileName();
                S3Client raw = S3Client.builder().httpClientBuilder(UrlConnectionHttpClient.builder())
                        .endpointOverride(server.endpoint()).forcePathStyle(true).region(Region.US_EAST_1)
                        .credentialsProvider(credentials(server)).build();
                opened.add(raw);
                yield new Backend() {
                    @Override
                    public ArtifactStore store() throws IOException {
                        return s3Store(server, prefix, Files.createTempDirectory(temp, "cache"), 1L << 30, 5L << 20);
                    }

                    @Override
                    public void overwrite(ArtifactStore.Artifact artifact, String file, byte[] bytes) {
                        raw.putObject(request -> request.bucket(server.bucket()).key(prefix + "/sha256/"
                                + artifact.sha256() + "/" + file), RequestBody.fromBytes(bytes));
                    }

                    @Override
                    public void writeWithoutManifest(String digest, String file, byte[] bytes) {
                        raw.putObject(request -> request.bucket(server.bucket()).key(prefix + "/sha256/" + digest
                                + "/" + file), RequestBody.fromBytes(bytes));
                    }
                };
            }
            default -> throw new IllegalArgumentException(kind);
        };
    }

    static StaticCredentialsProvider credentials(LocalS3Server server) {
        return StaticCredentialsProvider.create(AwsBasicCredentials.create(server.accessKey(), server.secretKey()));
    }

    S3ArtifactStore s3Store(LocalS3Server server, String prefix, Path cache, long cacheMax, long partSize)
            throws IOException {
        S3ArtifactStore store = new S3ArtifactStore(new S3ArtifactStore.Settings(server.bucket(), prefix,
                Optional.of(server.endpoint()), Region.US_EAST_1, true, credentials(server), cache, cacheMax, partSize, 4));
        opened.add(store);
        return store;
    }

    @AfterEach
    void closeClients() throws Exception {
        for (AutoCloseable each : opened) {
            each.close();
        }
    }

    private Path directory(String name, String... contents) throws IOException {
        Path directory = Files.createDirectories(temp.resolve(name));
        for (int i = 0; i < contents.length; i++) {
            Files.writeString(directory.resolve("file" + i + ".txt"), contents[i]);
        }
        return directory;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void aDirectoryComesBackWholeUnderItsContentDigest(String kind) throws IOException {
        Backend backend = backend(kind);
        ArtifactStore store = backend.store();
        ArtifactStore.Artifact artifact = store.putDirectory(directory("a", "alpha", "beta"));
        String manifest = Sha256.of("alpha".getBytes(StandardCharsets.UTF_8)) + "  file0.txt\n"
                + Sha256.of("beta".getBytes(StandardCharsets.UTF_8)) + "  file1.txt\n";
        assertEquals(Sha256.of(manifest.getBytes(StandardCharsets.UTF_8)), artifact.sha256());
        assertEquals(kind.equals("s3") ? "s3" : "file", artifact.uri().getScheme());

        Path opened = backend.store().open(artifact.uri(), artifact.sha256());
        assertEquals("alpha", Files.readString(opened.resolve("file0.txt")));
        assertEquals("beta", Files.readString(opened.resolve("file1.txt")));
        try (Stream<Path> files = Files.list(opened)) {
            assertEquals(2, files.count());
        }
        assertEquals(artifact, store.putDirectory(directory("b", "alpha", "beta")), "same content, same artifact");
        assertNotEquals(artifact, store.putDirectory(directory("c", "alpha", "gamma")));
        assertThrows(ArtifactIntegrityException.class, () -> store.open(artifact.uri(), "not-a-digest"));
        assertThrows(IOException.class, () -> store.open(artifact.uri(), "0".repeat(64)), "another digest's URI");
        // the disk a write takes: a local store's own directory, where the artifact now is; a bucket's, none here
        if (kind.equals("local")) {
            Path root = store.localRoot().orElseThrow();
            assertTrue(Path.of(artifact.uri()).startsWith(root), artifact.uri() + " under " + root);
        } else {
            assertEquals(Optional.empty(), store.localRoot());
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void aCorruptedObjectFailsTheIntegrityCheck(String kind) throws IOException {
        Backend backend = backend(kind);
        ArtifactStore.Artifact artifact = backend.store().putDirectory(directory("a", "alpha", "beta"));
        backend.overwrite(artifact, "file1.txt", "betA".getBytes(StandardCharsets.UTF_8));
        ArtifactIntegrityException refused = assertThrows(ArtifactIntegrityException.class,
                () -> backend.store().open(artifact.uri(), artifact.sha256()));
        assertTrue(refused.getMessage().contains(artifact.sha256()) || refused.getMessage().contains("file1.txt"),
                refused.getMessage());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void filesWithoutTheirManifestAreNoArtifact(String kind) throws IOException {
        Backend backend = backend(kind);
        ArtifactStore store = backend.store();
        Path source = directory("a", "alpha", "beta");
        String digest = Sha256.of(ArtifactManifest.of(source).getBytes(StandardCharsets.UTF_8));
        ArtifactStore.Artifact artifact = store.putDirectory(source);
        assertEquals(digest, artifact.sha256());

        Path other = directory("b", "gamma");
        String otherDigest = Sha256.of(ArtifactManifest.of(other).getBytes(StandardCharsets.UTF_8));
        backend.writeWithoutManifest(otherDigest, "file0.txt", "gamma".getBytes(StandardCharsets.UTF_8));
        java.net.URI otherUri = java.net.URI.create(artifact.uri().toString().replace(digest, otherDigest));
        IOException absent = assertThrows(IOException.class, () -> backend.store().open(otherUri, otherDigest));
        assertFalse(absent instanceof ArtifactIntegrityException, "absent, not half there: " + absent.getMessage());
        assertTrue(absent.getMessage().contains("no such artifact"), absent.getMessage());
    }

    /** A reader racing a writer of a multi-file artifact finds it absent or whole — never part of it. */
    @ParameterizedTest
    @MethodSource("backends")
    void aReaderNeverSeesAPartialArtifact(String kind) throws Exception {
        Backend backend = backend(kind);
        Path source = Files.createDirectories(temp.resolve("big"));
        Random random = new Random(7);
        for (int i = 0; i < 6; i++) {
            byte[] bytes = new byte[1 << 20];
            random.nextBytes(bytes);
            Files.write(source.resolve("part" + i + ".bin"), bytes);
        }
        String digest = Sha256.of(ArtifactManifest.of(source).getBytes(StandardCharsets.UTF_8));
        ArtifactStore writer = backend.store();
        ArtifactStore reader = backend.store();
        AtomicBoolean written = new AtomicBoolean();
        AtomicInteger absentReads = new AtomicInteger();
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try {
            Future<ArtifactStore.Artifact> put = threads.submit(() -> {
                try {
                    return writer.putDirectory(source);
                } finally {
                    written.set(true);
                }
            });
            // Where the big artifact will be: a small artifact's URI with the digest exchanged.
            ArtifactStore.Artifact probe = writer.putDirectory(directory("probe", "x"));
            java.net.URI target = java.net.URI.create(probe.uri().toString().replace(probe.sha256(), digest));
            Future<Path> read = threads.submit(() -> {
                while (true) {
                    boolean wasWritten = written.get();
                    try {
                        return reader.open(target, digest);
                    } catch (ArtifactIntegrityException partial) {
                        throw partial;
                    } catch (IOException absent) {
                        if (wasWritten) {
                            throw absent;
                        }
                        absentReads.incrementAndGet();
                    }
                }
            });
            assertEquals(digest, put.get().sha256());
            Path whole = read.get();
            assertEquals(digest, Sha256.of(ArtifactManifest.of(whole).getBytes(StandardCharsets.UTF_8)));
        } finally {
            threads.shutdownNow();
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void aConditionalWriteHappensOnlyWhenItsExpectationHolds(String kind) throws IOException {
        Backend backend = backend(kind);
        ArtifactStore one = backend.store();
        ArtifactStore other = backend.store();
        byte[] first = "first".getBytes(StandardCharsets.UTF_8);
        byte[] second = "second".getBytes(StandardCharsets.UTF_8);
        assertTrue(one.compareAndSetReference("merge-job-100.outcome.json", Optional.empty(), first));
        assertFalse(other.compareAndSetReference("merge-job-100.outcome.json", Optional.empty(), second),
                "a create loses to the value already there");
        assertFalse(other.compareAndSetReference("merge-job-100.outcome.json", Optional.of(second), second),
                "a replace expecting another value loses");
        assertFalse(other.compareAndSetReference("merge-job-200.outcome.json", Optional.of(first), second),
                "a replace of an absent reference loses");
        assertTrue(other.compareAndSetReference("merge-job-100.outcome.json", Optional.of(first), second));
        assertFalse(one.compareAndSetReference("merge-job-100.outcome.json", Optional.of(first), first),
                "the first writer's expectation is stale now");
        assertArrayEquals(second, one.readReference("merge-job-100.outcome.json").orElseThrow());
        assertEquals(List.of("merge-job-100.outcome.json"), one.referenceNames());
    }

    /**
     * Local only: S3Proxy 4.0's filesystem backend checks If-None-Match / If-Match before it writes, without a
     * lock, so writers racing within the same milliseconds can both pass there; AWS S3, MinIO and GCS evaluate
     * the condition atomically (docs/operations.md).
     */
    @org.junit.jupiter.api.Test
    void ofConcurrentConditionalWritersExactlyOneWins() throws Exception {
        Backend backend = backend("local");
        int writers = 8;
        List<ArtifactStore> stores = new ArrayList<>();
        for (int i = 0; i < writers; i++) {
            stores.add(backend.store()); // each its own instance, as replicas would be
        }
        List<Integer> created = race(writers, i -> stores.get(i).compareAndSetReference("merge-job-100.outcome.json",
                Optional.empty(), ("writer " + i).getBytes(StandardCharsets.UTF_8)));
        assertEquals(1, created.size(), "exactly one creator wins: " + created);
        byte[] first = ("writer " + created.getFirst()).getBytes(StandardCharsets.UTF_8);
        assertArrayEquals(first, stores.getFirst().readReference("merge-job-100.outcome.json").orElseThrow());

        List<Integer> replaced = race(writers, i -> stores.get(i).compareAndSetReference("merge-job-100.outcome.json",
                Optional.of(first), ("second " + i).getBytes(StandardCharsets.UTF_8)));
        assertEquals(1, replaced.size(), "exactly one replacer of the same value wins: " + replaced);
        assertArrayEquals(("second " + replaced.getFirst()).getBytes(StandardCharsets.UTF_8),
                stores.getFirst().readReference("merge-job-100.outcome.json").orElseThrow());
    }

    @ParameterizedTest
    @MethodSource("backends")
    void concurrentPlainWritersLeaveOneWholeValueAndReadersSeeOnlyWholeValues(String kind) throws Exception {
        Backend backend = backend(kind);
        ArtifactStore reader = backend.store();
        Set<String> values = ConcurrentHashMap.newKeySet();
        for (int i = 0; i < 6; i++) {
            values.add(("{\"step\": " + i + ", \"pad\": \"" + "x".repeat(4096 * (i + 1)) + "\"}"));
        }
        List<String> ordered = List.copyOf(values);
        AtomicBoolean done = new AtomicBoolean();
        ExecutorService readerThread = Executors.newSingleThreadExecutor();
        Future<Integer> reads = readerThread.submit(() -> {
            int seen = 0;
            while (!done.get()) {
                Optional<byte[]> value = reader.readReference("job-a.latest.json");
                if (value.isPresent()) {
                    String text = new String(value.get(), StandardCharsets.UTF_8);
                    if (!values.contains(text)) {
                        throw new AssertionError("a reader saw a value no writer wrote whole: " + text.length() + " chars");
                    }
                    seen++;
                }
            }
            return seen;
        });
        List<ArtifactStore> stores = new ArrayList<>();
        for (int i = 0; i < ordered.size(); i++) {
            stores.add(backend.store());
        }
        race(ordered.size(), i -> {
            for (int round = 0; round < 5; round++) {
                stores.get(i).writeReference("job-a.latest.json", ordered.get(i).getBytes(StandardCharsets.UTF_8));
            }
            return true;
        });
        done.set(true);
        reads.get();
        readerThread.shutdown();
        assertTrue(values.contains(new String(reader.readReference("job-a.latest.json").orElseThrow(),
                StandardCharsets.UTF_8)));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void retentionDeletesWhatNoLiveReferenceNamesOnceOld(String kind) throws IOException {
        Backend backend = backend(kind);
        ArtifactStore store = backend.store();
        ArtifactStore.Artifact live = store.putDirectory(directory("live", "kept"));
        ArtifactStore.Artifact dead = store.putDirectory(directory("dead", "old checkpoint"));
        store.writeReference("job-a.latest.json", ("{\"adapter\": {\"sha256\": \"" + live.sha256() + "\"}}")
                .getBytes(StandardCharsets.UTF_8));
        Path crashed = directory("crashed", "half written");
        String crashedDigest = Sha256.of(ArtifactManifest.of(crashed).getBytes(StandardCharsets.UTF_8));
        backend.writeWithoutManifest(crashedDigest, "file0.txt", "half written".getBytes(StandardCharsets.UTF_8));
        long before = store.diskUsage();

        ArtifactStore.Sweep young = Retention.sweep(store, Duration.ofDays(7), Instant.now());
        assertEquals(0, young.artifactsDeleted(), "nothing is old yet");
        assertEquals(2, young.artifactsKept());

        ArtifactStore.Sweep later = Retention.sweep(store, Duration.ofDays(7), Instant.now().plus(Duration.ofDays(8)));
        assertEquals(1, later.artifactsDeleted());
        assertEquals(1, later.artifactsKept());
        assertTrue(later.bytesFreed() > 0);
        assertTrue(later.bytesInUse() < before, later.bytesInUse() + " < " + before);
        assertEquals("kept", Files.readString(backend.store().open(live.uri(), live.sha256()).resolve("file0.txt")));
        IOException gone = assertThrows(IOException.class, () -> backend.store().open(dead.uri(), dead.sha256()));
        assertTrue(gone.getMessage().contains("no such artifact"), gone.getMessage());
        assertEquals(List.of("job-a.latest.json"), store.referenceNames(), "references stay");
    }

    private interface Attempt {
        boolean run(int index) throws Exception;
    }

    /** Runs {@code count} attempts at once from a common start; the indexes of those that returned true. */
    private static List<Integer> race(int count, Attempt attempt) throws Exception {
        ExecutorService threads = Executors.newFixedThreadPool(count);
        CountDownLatch start = new CountDownLatch(1);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                int index = i;
                Callable<Boolean> task = () -> {
                    start.await();
                    return attempt.run(index);
                };
                results.add(threads.submit(task));
            }
            start.countDown();
            List<Integer> winners = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                if (results.get(i).get()) {
                    winners.add(i);
                }
            }
            return winners;
        } finally {
            threads.shutdownNow();
        }
    }
}
