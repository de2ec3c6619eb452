package dev.loraflow.trainer.service;

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;

/** Creates the trainer's topics when they do not exist yet, so a fresh broker needs no setup. */
public final class Topics {

    private Topics() {}

    public static void ensure(String bootstrapServers, int batchPartitions, String jobs, String batches,
                              String checkpoints, String deadLetters) {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        try (Admin admin = Admin.create(config)) {
            Set<String> existing = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            List<NewTopic> missing = new ArrayList<>();
            // One partition keeps every job definition in one order; batches spread jobs over replicas.
            for (NewTopic topic : List.of(new NewTopic(jobs, 1, (short) 1), new NewTopic(batches, batchPartitions, (short) 1),
                    new NewTopic(checkpoints, batchPartitions, (short) 1), new NewTopic(deadLetters, 1, (short) 1))) {
                if (!existing.contains(topic.name())) {
                    missing.add(topic);
                }
            }
            if (!missing.isEmpty()) {
                try {
                    admin.createTopics(missing).all().get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException)) {
                        throw e;
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while creating topics", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("cannot reach Kafka at " + bootstrapServers + " to create topics: " + e.getMessage(), e);
        }
    }
}
