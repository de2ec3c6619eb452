package dev.loraflow.platform.store;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/** References from events and requests resolve only inside configured roots. */
public final class SafePaths {

    private SafePaths() {}

    /**
     * @throws IllegalArgumentException for an empty, absolute or escaping name ({@code ..}, or a link
     *                                  whose real path is outside the root)
     * @throws IOException              if it does not exist
     */
    public static Path resolveInside(Path root, String name, String what) throws IOException {
        if (name == null || name.isBlank() || name.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " reference is empty");
        }
        Path relative;
        try {
            relative = Path.of(name);
        } catch (InvalidPathException e) {
            throw new IllegalArgumentException(what + " reference \"" + name + "\" is not a path", e);
        }
        if (relative.isAbsolute() || name.startsWith("/") || name.startsWith("\\")) {
            throw new IllegalArgumentException(what + " reference \"" + name + "\" must be relative to its root");
        }
        for (Path part : relative) {
            if (part.toString().equals("..")) {
                throw new IllegalArgumentException(what + " reference \"" + name + "\" may not contain ..");
            }
        }
        Path normalizedRoot = root.toAbsolutePath().normalize();
        Path resolved = normalizedRoot.resolve(relative).normalize();
        if (!resolved.startsWith(normalizedRoot)) {
            throw new IllegalArgumentException(what + " reference \"" + name + "\" leaves its root");
        }
        if (!Files.exists(resolved)) {
            throw new IOException(what + " \"" + name + "\" not found under " + normalizedRoot);
        }
        if (!resolved.toRealPath().startsWith(normalizedRoot.toRealPath())) {
            throw new IllegalArgumentException(what + " reference \"" + name + "\" leads outside its root through a link");
        }
        return resolved;
    }
}
