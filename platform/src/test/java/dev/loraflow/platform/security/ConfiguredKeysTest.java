package dev.loraflow.platform.security;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConfiguredKeysTest {

    @TempDir
    Path temp;

    @Test
    void inlineKeysAloneAndNoneAtAll() {
        ConfiguredKeys inline = new ConfiguredKeys(List.of(" one ", "", "two"), Optional.empty());
        assertEquals(List.of("one", "two"), inline.keys());
        assertTrue(inline.accepts("Bearer two", null));
        assertTrue(inline.accepts(null, "one"));
        assertFalse(inline.accepts(null, "three"));
        ConfiguredKeys none = new ConfiguredKeys(List.of(), Optional.empty());
        assertFalse(none.configured());
        assertFalse(none.accepts(null, ""));
    }

    /** As Kubernetes mounts a Secret: the file is a link into a timestamped directory, swapped on rotation. */
    @Test
    void aMountedSecretIsReadAndRotatedWithoutARestart() throws IOException {
        Path mount = Files.createDirectories(temp.resolve("api-keys"));
        Path first = Files.createDirectories(mount.resolve("..2026_12_05_01"));
        Files.writeString(first.resolve("keys"), "alpha, beta\ngamma\n");
        Path data = Files.createSymbolicLink(mount.resolve("..data"), first.getFileName());
        Path file = Files.createSymbolicLink(mount.resolve("keys"), Path.of("..data/keys"));
        ConfiguredKeys keys = new ConfiguredKeys(List.of("inline"), Optional.of(file));
        assertEquals(List.of("inline", "alpha", "beta", "gamma"), keys.keys());
        assertTrue(keys.accepts(null, "gamma"));

        Path second = Files.createDirectories(mount.resolve("..2026_12_05_02"));
        Files.writeString(second.resolve("keys"), "delta");
        Files.setLastModifiedTime(second.resolve("keys"), FileTime.from(Instant.now().plusSeconds(5)));
        Files.delete(data);
        Files.createSymbolicLink(data, second.getFileName());
        assertFalse(keys.accepts(null, "gamma"), "a rotated-out key is refused at once");
        assertTrue(keys.accepts(null, "delta"));
        assertTrue(keys.accepts("Bearer inline", null));

        Files.delete(data);
        assertFalse(keys.accepts(null, "delta"), "an unreadable file accepts nothing of it (fails closed)");
        assertTrue(keys.accepts(null, "inline"));
        Files.createSymbolicLink(data, second.getFileName());
        assertTrue(keys.accepts(null, "delta"), "and recovers once it is back");
    }

    @Test
    void anEmptyOrMissingFileConfiguresNothing() throws IOException {
        Path empty = Files.writeString(temp.resolve("empty"), " \n");
        assertFalse(new ConfiguredKeys(List.of(), Optional.of(empty)).configured());
        assertFalse(new ConfiguredKeys(List.of(), Optional.of(temp.resolve("missing"))).configured());
    }
}
