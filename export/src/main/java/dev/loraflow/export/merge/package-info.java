/**
 * Merging PEFT LoRA adapters into their base models ({@link dev.loraflow.export.merge.LoraMerge}): the
 * library behind {@code ./loraflow merge} and the merger service. It lives beside the ONNX export
 * because both turn a trained adapter into something served, and both the CLI and the service depend
 * on this module without depending on each other (the CLI has no Quarkus, the service no picocli).
 */
package dev.loraflow.export.merge;
