package dev.loraflow.trainer.service;

/** A job's progress as {@code GET /jobs/{id}} and the progress stream show it. */
public record JobStatus(String jobId, String state, long step, long totalSteps, double loss, double tokensPerSecond,
                        String lastCheckpointUri, String lastCheckpointSha256, long batchesReceived, long batchesApplied,
                        long batchesSkippedDuplicate, long batchesDeadLettered, int batchesHeld) {}
