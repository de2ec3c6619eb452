package dev.loraflow.core.io;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** Whole directory trees: staging and work directories that are dropped once their content has moved on. */
public final class FileTrees {

    private FileTrees() {}

    /**
     * Deletes {@code path} and everything below it, deepest first; nothing when it does not exist.
     *
     * @throws IOException for the first entry that cannot be deleted (what came before it is gone)
     */
    public static void delete(Path path) throws IOException {
        if (!Files.exists(path)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(path)) {
            for (Path entry : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(entry);
            }
        }
    }
}
