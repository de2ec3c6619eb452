/**
 * Merging PEFT LoRA adapters into their base models ({@link dev.loraflow.core.merge.LoraMerge}): the
 * LoRA math behind {@code ./loraflow merge} and the merger service, framework-free like the rest of core
 * (the CLI and the merger both call it; neither depends on the other).
 */
package dev.loraflow.core.merge;
