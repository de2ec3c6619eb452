package dev.loraflow.cli;

import java.util.OptionalLong;

/** A command whose Java heap can be told from its arguments before it runs: {@link HeapSize} asks it. */
interface HeapSized {

    /**
     * Bytes the command will hold on the Java heap, from its model's config and checkpoint header; empty where it
     * holds nothing of size there.
     */
    OptionalLong heapNeeded() throws Exception;
}
