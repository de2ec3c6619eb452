package dev.loraflow.serving.messaging;

import io.smallrye.config.ConfigMapping;
import java.nio.file.Path;

/** The topics serving follows and the artifact store their events point into ({@code loraflow.topics.*}, {@code loraflow.store.root}). */
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
    }
}
