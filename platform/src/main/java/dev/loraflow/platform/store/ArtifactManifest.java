package dev.loraflow.platform.store;

import dev.loraflow.core.io.Sha256;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * An artifact's manifest, shared by every store: one {@code "<sha256>  <file>\n"} line per regular file in
 * name order, as {@code sha256sum} prints them. Its SHA-256 is the artifact's digest.
 */
final class ArtifactManifest {

    static final Pattern DIGEST = Pattern.compile("[0-9a-f]{64}");
    private static final Pattern LINE = Pattern.compile("([0-9a-f]{64})  ([^/\\n]+)");

    private ArtifactManifest() {}

    /** The directory's regular files in name order; anything else (subdirectories, links) is refused rather than skipped. */
    static List<Path> files(Path source) throws IOException {
        if (!Files.isDirectory(source)) {
            throw new IOException(source + ": not a directory");
        }
        List<Path> files = new ArrayList<>();
        try (Stream<Path> entries = Files.list(source)) {
            for (Path entry : (Iterable<Path>) entries::iterator) {
                if (!Files.isRegularFile(entry, LinkOption.NOFOLLOW_LINKS)) {
                    throw new IOException(entry + ": an artifact holds regular files only");
                }
                files.add(entry);
            }
        }
        files.sort(Comparator.comparing(path -> path.getFileName().toString()));
        return files;
    }

    /** The manifest of a directory, every file hashed. */
    static String of(Path directory) throws IOException {
        StringBuilder manifest = new StringBuilder();
        for (Path file : files(directory)) {
            manifest.append(Sha256.of(file)).append("  ").append(file.getFileName()).append('\n');
        }
        return manifest.toString();
    }

    /**
     * File name → SHA-256 of a manifest read back, in its order.
     *
     * @throws ArtifactIntegrityException if a line is not {@code "<sha256>  <name>"}, or names are out of order
     */
    static Map<String, String> parse(String manifest, String where) throws ArtifactIntegrityException {
        Map<String, String> files = new LinkedHashMap<>();
        String previous = null;
        for (String line : manifest.split("\n", -1)) {
            if (line.isEmpty()) {
                continue;
            }
            var match = LINE.matcher(line);
            if (!match.matches() || match.group(2).equals(".") || match.group(2).equals("..")
                    || (previous != null && previous.compareTo(match.group(2)) >= 0)) {
                throw new ArtifactIntegrityException(where + ": malformed manifest line \"" + line + "\"");
            }
            previous = match.group(2);
            files.put(match.group(2), match.group(1));
        }
        return files;
    }
}
