package dev.loraflow.platform.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Retention over a real store directory, with the references written as the trainer and the merger write them. */
class RetentionTest {

    private static final Duration WEEK = Duration.ofDays(7);

    @TempDir
    Path temp;

    private ArtifactStore.Artifact artifact(LocalArtifactStore store, String name, String content, Instant stored)
            throws IOException {
        Path source = Files.createDirectories(temp.resolve("sources").resolve(name));
        Files.writeString(source.resolve("file.bin"), content);
        ArtifactStore.Artifact artifact = store.putDirectory(source);
        Files.setLastModifiedTime(Path.of(artifact.uri()), FileTime.from(stored));
        return artifact;
    }

    private static void reference(LocalArtifactStore store, String name, String json) throws IOException {
        store.writeReference(name, json.getBytes(StandardCharsets.UTF_8));
    }

    private static String checkpoint(String job, long step, ArtifactStore.Artifact adapter) {
        return "{\"job_id\": \"" + job + "\", \"step\": " + step + ", \"uri\": \"" + adapter.uri() + "\", \"sha256\": \""
                + adapter.sha256() + "\"}";
    }

    @Test
    void deletesOldArtifactsThatNoLiveReferenceNamesAndKeepsTheRest() throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        Instant now = Instant.parse("2026-12-05T10:00:00Z");
        Instant old = now.minus(Duration.ofDays(30));

        // Job j: checkpoints at steps 100 and 200; the latest is the trainer's resume point.
        var step100 = artifact(store, "j-100", "adapter 100", old);
        var step200 = artifact(store, "j-200", "adapter 200", old);
        reference(store, "job-j.latest.json", checkpoint("j", 200, step200));
        // The merger merged both; model j's latest version is 200.
        var merged100 = artifact(store, "m-100", "merged 100", old);
        var onnx100 = artifact(store, "o-100", "onnx 100", old);
        var merged200 = artifact(store, "m-200", "merged 200", old);
        var onnx200 = artifact(store, "o-200", "onnx 200", old);
        for (var version : new Object[][] {{100L, step100, merged100, onnx100}, {200L, step200, merged200, onnx200}}) {
            reference(store, "merge-j-" + version[0] + ".checkpoint.json", checkpoint("j", (long) version[0],
                    (ArtifactStore.Artifact) version[1]));
            reference(store, "merge-j-" + version[0] + ".outcome.json", "{\"status\": \"merged\", \"event\": {\"merged_model\": "
                    + "{\"uri\": \"" + ((ArtifactStore.Artifact) version[2]).uri() + "\"}, \"onnx\": {\"sha256\": \""
                    + ((ArtifactStore.Artifact) version[3]).sha256() + "\"}}}");
        }
        reference(store, "model-j.latest.json", "{\"version\": 200}");
        // A merge asked for (step 50 of job k) and not done yet: its adapter is needed.
        var pending = artifact(store, "k-50", "adapter k 50", old);
        reference(store, "merge-k-50.checkpoint.json", checkpoint("k", 50, pending));
        // Unreferenced, but stored an hour ago: within the retention.
        var recent = artifact(store, "recent", "recent", now.minus(Duration.ofHours(1)));
        // A crashed writer's staging directory from last month, and one being written now.
        Path crashed = Files.createDirectories(store.root().resolve("tmp/crashed"));
        Files.writeString(crashed.resolve("half"), "x");
        Files.setLastModifiedTime(crashed, FileTime.from(old));
        Path writing = Files.createDirectories(store.root().resolve("tmp/writing"));

        assertEquals(Set.of(step200.sha256(), merged200.sha256(), onnx200.sha256(), pending.sha256()),
                Retention.liveDigests(store));
        long before = store.diskUsage();
        ArtifactStore.Sweep sweep = Retention.sweep(store, WEEK, now);

        assertEquals(3, sweep.artifactsDeleted(), "step 100's adapter, merged model and graph");
        assertEquals("adapter 100".length() + "merged 100".length() + "onnx 100".length(), sweep.bytesFreed());
        assertEquals(5, sweep.artifactsKept());
        for (var gone : new ArtifactStore.Artifact[] {step100, merged100, onnx100}) {
            assertFalse(Files.exists(Path.of(gone.uri())), gone.uri().toString());
        }
        for (var kept : new ArtifactStore.Artifact[] {step200, merged200, onnx200, pending, recent}) {
            assertEquals(Path.of(kept.uri()), store.open(kept.uri(), kept.sha256()), "intact: " + kept.uri());
        }
        assertFalse(Files.exists(crashed));
        assertTrue(Files.exists(writing));
        assertEquals(before - sweep.bytesFreed() - "x".length(), sweep.bytesInUse());
        assertEquals(sweep.bytesInUse(), store.diskUsage());
        try (Stream<Path> refs = Files.list(store.root().resolve("refs"))) {
            assertEquals(7, refs.count(), "references stay");
        }

        // Once the merge of k-50 is recorded, its adapter is no longer needed.
        reference(store, "merge-k-50.outcome.json", "{\"status\": \"failed\"}");
        assertEquals(1, Retention.sweep(store, WEEK, now).artifactsDeleted());
        assertFalse(Files.exists(Path.of(pending.uri())));
    }

    @Test
    void anArtifactStoredAgainIsYoungAgain() throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        Instant now = Instant.now();
        var first = artifact(store, "a", "same bytes", now.minus(Duration.ofDays(30)));
        Path again = Files.createDirectories(temp.resolve("again"));
        Files.writeString(again.resolve("file.bin"), "same bytes");
        assertEquals(first, store.putDirectory(again), "the same content is the same artifact");
        assertEquals(0, Retention.sweep(store, WEEK, now).artifactsDeleted(), "about to be referenced: kept");
        assertEquals(1, Retention.sweep(store, WEEK, now.plus(Duration.ofDays(8))).artifactsDeleted());
    }
}
