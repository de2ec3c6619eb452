package dev.loraflow.platform.store;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

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

    /**
     * A path named by a request (serving's admin API) accepted only inside one of {@code roots}: where it
     * really leads — {@code ..} resolved, every link followed, also for a path that does not exist yet (its
     * nearest existing ancestor is followed) — must lie under a root's real path. Refusing a path outside
     * whether or not it exists tells a caller nothing of the file system outside the roots.
     *
     * @return the real path (the normalized absolute one where it does not exist)
     * @throws IllegalArgumentException for a path outside every root, or not a path at all
     */
    public static Path confine(List<Path> roots, String requested, String what) throws IOException {
        if (requested == null || requested.isBlank() || requested.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " is empty");
        }
        Path path;
        try {
            path = Path.of(requested).toAbsolutePath().normalize();
        } catch (InvalidPathException e) {
            throw new IllegalArgumentException(what + " \"" + requested + "\" is not a path", e);
        }
        Path real = realPath(path);
        List<Path> realRoots = new ArrayList<>();
        for (Path root : roots) {
            Path absolute = root.toAbsolutePath().normalize();
            realRoots.add(Files.exists(absolute) ? absolute.toRealPath() : absolute);
        }
        if (realRoots.stream().noneMatch(real::startsWith)) {
            throw new IllegalArgumentException(what + " \"" + requested + "\" is outside the directories it may be read from "
                    + realRoots + (real.equals(path) ? "" : " (it leads to " + real + ")"));
        }
        return real;
    }

    /** The real path of {@code path}, or of its nearest existing ancestor with the missing names appended. */
    private static Path realPath(Path path) throws IOException {
        Path existing = path;
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return path;
        }
        return existing.toRealPath().resolve(existing.relativize(path)).normalize();
    }
}
