package dev.loraflow.core.model;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.safetensors.SafetensorsFile;
import dev.loraflow.core.safetensors.ShardedSafetensors;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The SHA-256 that names a base model on the platform (the trainer's checkpoint events carry it as
 * {@code base_model.sha256}, the merger checks it): the digest of a manifest of the files a load reads —
 * config.json and the weights, {@code model.safetensors} or else the index and every shard it names
 * (shards may sit in subdirectories) — one {@code "<sha256>  <relative path>\n"} line each in name order,
 * as {@code sha256sum} prints them and as the artifact store names its directories. Links are followed: a
 * Hugging Face cache snapshot is a directory of links into its blob store, and the digest is of the bytes
 * read, not of the links. Tokenizer files are left out: they do not change the weights an adapter was
 * trained against.
 */
public final class ModelDigest {

    private ModelDigest() {}

    public static String of(Path modelDirectory) throws IOException {
        return of(modelDirectory, Map.of());
    }

    /**
     * The digest, taken on a thread of its own, for a caller that needs it only later: a training run starts it
     * before it loads the model and records it in its checkpoints, so the hashing (about a second of one core per
     * GB) overlaps the load and the first steps instead of preceding them. The thread is a daemon: a run that ends
     * without waiting for it is not held up.
     */
    public static CompletableFuture<String> inBackground(Path modelDirectory) {
        CompletableFuture<String> digest = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("loraflow-model-digest").start(() -> {
            try {
                digest.complete(of(modelDirectory));
            } catch (IOException | RuntimeException e) {
                digest.completeExceptionally(e);
            }
        });
        return digest;
    }

    /**
     * The digest, with the SHA-256 of some of the files already taken (by a pass that read them anyway).
     *
     * @param known file (absolute and normalized, as {@link #absolute} gives it) → its SHA-256; the others are hashed here
     */
    public static String of(Path modelDirectory, Map<Path, String> known) throws IOException {
        Path directory = absolute(modelDirectory);
        StringBuilder manifest = new StringBuilder();
        for (String file : filesRead(modelDirectory)) {
            Path path = directory.resolve(file);
            String sha256 = known.get(path);
            manifest.append(sha256 != null ? sha256 : Sha256.of(path)).append("  ").append(file).append('\n');
        }
        return Sha256.of(manifest.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** The files a load of the model reads, relative to its directory with {@code /} separators, in name order. */
    public static List<String> filesRead(Path modelDirectory) throws IOException {
        if (!Files.isDirectory(modelDirectory)) {
            throw new IOException(modelDirectory + ": not a model directory");
        }
        Path directory = absolute(modelDirectory);
        if (!Files.isRegularFile(directory.resolve("config.json"))) {
            throw new IOException(modelDirectory + ": has no config.json");
        }
        List<String> files = new ArrayList<>(List.of("config.json"));
        // The weights as the loaders find them: the same choice of single file or index, the same shards.
        try (ShardedSafetensors weights = ShardedSafetensors.open(directory)) {
            files.add(relative(directory, weights.source()));
            for (SafetensorsFile shard : weights.shards()) {
                String name = relative(directory, shard.path());
                if (!files.contains(name)) {
                    files.add(name);
                }
            }
        }
        files.sort(null);
        return files;
    }

    /** A file's path as {@link #of(Path, Map)} keys it: absolute and normalized. */
    public static Path absolute(Path file) {
        return file.toAbsolutePath().normalize();
    }

    private static String relative(Path directory, Path file) {
        return directory.relativize(absolute(file)).toString().replace(File.separatorChar, '/');
    }
}
