package dev.loraflow.platform.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LocalArtifactStoreTest {

    @TempDir
    Path temp;

    private Path directory(String name, String... contents) throws IOException {
        Path directory = Files.createDirectories(temp.resolve(name));
        for (int i = 0; i < contents.length; i++) {
            Files.writeString(directory.resolve("file" + i + ".txt"), contents[i]);
        }
        return directory;
    }

    @Test
    void anArtifactIsNamedByItsContentAsSha256sumWouldListIt() throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        ArtifactStore.Artifact artifact = store.putDirectory(directory("a", "alpha", "beta"));
        String manifest = Sha256.of("alpha".getBytes(StandardCharsets.UTF_8)) + "  file0.txt\n"
                + Sha256.of("beta".getBytes(StandardCharsets.UTF_8)) + "  file1.txt\n";
        assertEquals(Sha256.of(manifest.getBytes(StandardCharsets.UTF_8)), artifact.sha256());
        Path stored = store.open(artifact.uri(), artifact.sha256());
        assertEquals("beta", Files.readString(stored.resolve("file1.txt")));

        assertEquals(artifact, store.putDirectory(directory("b", "alpha", "beta")), "same content, same artifact");
        assertTrue(!artifact.equals(store.putDirectory(directory("c", "alpha", "gamma"))));
        try (Stream<Path> staging = Files.list(temp.resolve("store").resolve("tmp"))) {
            assertEquals(0, staging.count(), "no staging directory is left behind");
        }
    }

    @Test
    void tamperedOrForeignArtifactsAreRefused() throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        ArtifactStore.Artifact artifact = store.putDirectory(directory("a", "alpha"));
        Path stored = Path.of(artifact.uri());
        Files.writeString(stored.resolve("file0.txt"), "alphA");
        assertThrows(ArtifactIntegrityException.class, () -> store.open(artifact.uri(), artifact.sha256()));
        assertThrows(ArtifactIntegrityException.class, () -> store.open(artifact.uri(), "not-a-digest"));
        assertThrows(IOException.class, () -> store.open(temp.resolve("a").toUri(), artifact.sha256()), "outside the store");
        assertThrows(IOException.class, () -> store.open(URI.create("http://example.com/x"), artifact.sha256()));
    }

    @Test
    void onlyFlatDirectoriesOfRegularFilesAreStored() throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        Path nested = directory("nested", "x");
        Files.createDirectories(nested.resolve("sub"));
        assertThrows(IOException.class, () -> store.putDirectory(nested));
        Path linked = directory("linked", "x");
        Files.createSymbolicLink(linked.resolve("passwd"), Path.of("/etc/passwd"));
        assertThrows(IOException.class, () -> store.putDirectory(linked));
        assertThrows(IOException.class, () -> store.putDirectory(temp.resolve("missing")));
    }

    @Test
    void referencesAreReplacedWholeAndTheirNamesCannotEscape() throws IOException {
        LocalArtifactStore store = new LocalArtifactStore(temp.resolve("store"));
        assertFalse(store.readReference("job-a.latest.json").isPresent());
        store.writeReference("job-a.latest.json", "one".getBytes(StandardCharsets.UTF_8));
        store.writeReference("job-a.latest.json", "two".getBytes(StandardCharsets.UTF_8));
        assertArrayEquals("two".getBytes(StandardCharsets.UTF_8), store.readReference("job-a.latest.json").orElseThrow());
        for (String hostile : new String[] {"../x", "/etc/passwd", "", "a/b", ".hidden"}) {
            assertThrows(IllegalArgumentException.class, () -> store.writeReference(hostile, new byte[1]), hostile);
        }
    }
}
