package dev.loraflow.serving.messaging;

import io.smallrye.config.ConfigMapping;
import java.nio.file.Path;
import java.util.Optional;

/** The topics serving follows and the artifact store their events point into ({@code loraflow.topics.*}, {@code loraflow.store.root} or {@code .uri}). */
public interface FollowerConfig {

    @ConfigMapping(prefix = "loraflow.topics")
    interface Topics {
        String modelsMerged();

        String checkpoints();

        /** Partitions of the topics when serving creates them. */
        int partitions();
    }

    @ConfigMapping(prefix = "loraflow.store")
    interface Store {
        Path root();

        /** The store's location when it is not {@link #root()}, e.g. {@code s3://bucket/prefix}. */
        Optional<String> uri();

        /** Where the artifact store is: its URI when one is configured, else its root directory. */
        default String location() {
            return uri().orElse(root().toString());
        }
    }
}
