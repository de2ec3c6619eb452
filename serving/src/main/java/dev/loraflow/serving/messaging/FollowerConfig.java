package dev.loraflow.serving.messaging;

import io.smallrye.config.ConfigMapping;

/** The topics serving follows ({@code loraflow.topics.*}); the store their events point into is service-support's {@code StoreConfig}. */
public interface FollowerConfig {

    @ConfigMapping(prefix = "loraflow.topics")
    interface Topics {
        String modelsMerged();

        String checkpoints();

        /** Partitions of the topics when serving creates them. */
        int partitions();
    }
}
