package dev.loraflow.platform.security;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The API keys a service accepts: those given inline ({@code loraflow.api-keys}, comma-separated) and those
 * in a file ({@code loraflow.api-keys-file}), such as a Kubernetes Secret mounted as a volume, so that keys
 * stay out of the environment (which {@code /proc}, crash reports and {@code kubectl describe} show).
 *
 * <p>The file holds keys separated by commas, spaces or line breaks. It is read again whenever its
 * modification time or size changes — Kubernetes replaces a mounted Secret's files when the Secret changes,
 * so a rotated key takes effect without a restart. A configured file that cannot be read accepts nothing
 * (failing closed) until it can be read again.
 */
public final class ConfiguredKeys {

    private static final System.Logger LOG = System.getLogger(ConfiguredKeys.class.getName());
    private static final Pattern SEPARATORS = Pattern.compile("[,\\s]+");

    private final List<String> inline;
    private final Path file;
    private volatile Snapshot snapshot;
    /** Set while the file cannot be read, so that the warning is logged once per outage, not per request. */
    private volatile boolean unreadable;

    /** The keys read from the file, and the file's state they were read from. */
    private record Snapshot(FileTime modified, long size, List<String> keys) {}

    public ConfiguredKeys(List<String> inline, Optional<Path> file) {
        this.inline = inline.stream().map(String::strip).filter(key -> !key.isEmpty()).toList();
        this.file = file.orElse(null);
    }

    /** Every key accepted now: the inline ones, then the file's as it is now. */
    public List<String> keys() {
        if (file == null) {
            return inline;
        }
        List<String> keys = new ArrayList<>(inline);
        keys.addAll(fileKeys());
        return keys;
    }

    public boolean accepts(String authorization, String apiKey) {
        return ApiKeyCheck.accepts(keys(), authorization, apiKey);
    }

    public boolean configured() {
        return ApiKeyCheck.configured(keys());
    }

    private List<String> fileKeys() {
        try {
            BasicFileAttributes attributes = Files.readAttributes(file, BasicFileAttributes.class);
            Snapshot current = snapshot;
            if (current != null && current.modified().equals(attributes.lastModifiedTime())
                    && current.size() == attributes.size()) {
                return current.keys();
            }
            List<String> keys = SEPARATORS.splitAsStream(Files.readString(file, StandardCharsets.UTF_8))
                    .filter(key -> !key.isEmpty()).toList();
            snapshot = new Snapshot(attributes.lastModifiedTime(), attributes.size(), keys);
            unreadable = false;
            LOG.log(System.Logger.Level.INFO, "read {0} API key(s) from {1}", keys.size(), file);
            return keys;
        } catch (IOException e) {
            if (!unreadable) {
                LOG.log(System.Logger.Level.WARNING, "API key file {0} cannot be read, so no key of it is accepted: {1}",
                        file, e.toString());
            }
            unreadable = true;
            snapshot = null;
            return List.of();
        }
    }
}
