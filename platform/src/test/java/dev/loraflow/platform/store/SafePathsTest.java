package dev.loraflow.platform.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafePathsTest {

    @TempDir
    Path temp;

    @Test
    void confinesRequestedPathsToTheirRootsWhereverLinksAndDotsLead() throws IOException {
        Path root = Files.createDirectories(temp.resolve("store"));
        Path other = Files.createDirectories(temp.resolve("models"));
        Path outside = Files.createDirectories(temp.resolve("outside"));
        Path model = Files.writeString(Files.createDirectories(root.resolve("a")).resolve("model.onnx"), "graph");
        Files.writeString(outside.resolve("secret"), "no");
        List<Path> roots = List.of(root, other);

        assertEquals(model.toRealPath(), SafePaths.confine(roots, model.toString(), "path"));
        assertEquals(other.toRealPath().resolve("later/model.onnx"),
                SafePaths.confine(roots, other.resolve("later/model.onnx").toString(), "path"), "not there yet: still inside");
        // A link inside that stays inside is fine; the real path comes back.
        Path inner = Files.createSymbolicLink(root.resolve("current"), root.resolve("a"));
        assertEquals(model.toRealPath(), SafePaths.confine(roots, inner.resolve("model.onnx").toString(), "path"));

        Path escape = Files.createSymbolicLink(root.resolve("escape"), outside);
        for (String requested : List.of(outside.resolve("secret").toString(), "/etc/passwd",
                root.resolve("../outside/secret").toString(), root + "/a/../../outside", escape.resolve("secret").toString(),
                escape.resolve("missing/deeper").toString(), escape.toString(), "relative/from/the/working/directory")) {
            IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                    () -> SafePaths.confine(roots, requested, "path"), requested);
            assertTrue(refused.getMessage().contains("outside the directories"), refused.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> SafePaths.confine(roots, "", "path"));
        assertThrows(IllegalArgumentException.class, () -> SafePaths.confine(roots, "a\0b", "path"));
    }

    @Test
    void aRootThatIsItselfALinkIsComparedByItsRealPath() throws IOException {
        Path real = Files.createDirectories(temp.resolve("real-store"));
        Path linked = Files.createSymbolicLink(temp.resolve("store"), real);
        Path file = Files.writeString(real.resolve("model.onnx"), "graph");
        assertEquals(file.toRealPath(), SafePaths.confine(List.of(linked), linked.resolve("model.onnx").toString(), "path"));
        assertEquals(file.toRealPath(), SafePaths.confine(List.of(linked), file.toString(), "path"));
    }
}
