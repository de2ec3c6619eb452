package dev.loraflow.service.support;

import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import io.smallrye.config.ConfigMapping;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Where a service's artifact store is, the same keys in every service: {@code loraflow.store.uri} (e.g.
 * {@code s3://bucket/prefix?endpoint=…}, or {@code file:DIR}) when set, else the directory
 * {@code loraflow.store.root}. Other {@code loraflow.store.*} keys (the merger's retention) are read beside it.
 */
@ConfigMapping(prefix = "loraflow.store")
public interface StoreConfig {

    /** The store's directory when no {@link #uri()} is configured. */
    Path root();

    /** The store's location when it is not {@link #root()}. */
    Optional<String> uri();

    /** Where the artifact store is: its URI when one is configured, else its root directory. */
    default String location() {
        return uri().orElse(root().toString());
    }

    /** Opens the store at {@link #location()}. */
    default ArtifactStore open() throws IOException {
        return ArtifactStores.open(location());
    }
}
