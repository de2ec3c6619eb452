package dev.loraflow.trainer.service;

/** Where a batch record came from, and its bytes, for dead letters and offsets. */
public record SourceRecord(String topic, int partition, long offset, byte[] key, byte[] value) {}
