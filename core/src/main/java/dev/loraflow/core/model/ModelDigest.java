package dev.loraflow.export.merge;

import dev.loraflow.core.io.Sha256;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * The SHA-256 that names a base model on the platform (the trainer's checkpoint events carry it as
 * {@code base_model.sha256}): the digest of a manifest of config.json and every safetensors file and
 * index, one {@code "<sha256>  <file>\n"} line each in name order, as {@code sha256sum} prints them and
 * as the artifact store names its directories. Tokenizer files are left out: they do not change the
 * weights an adapter was trained against.
 */
public final class ModelDigest {

    private ModelDigest() {}

    public static String of(Path modelDirectory) throws IOException {
        if (!Files.isDirectory(modelDirectory)) {
            throw new IOException(modelDirectory + ": not a model directory");
        }
        List<Path> files;
        try (Stream<Path> entries = Files.list(modelDirectory)) {
            files = entries.filter(path -> Files.isRegularFile(path, LinkOption.NOFOLLOW_LINKS))
                    .filter(path -> isWeightsOrConfig(path.getFileName().toString()))
                    .sorted()
                    .toList();
        }
        StringBuilder manifest = new StringBuilder();
        for (Path file : files) {
            manifest.append(Sha256.of(file)).append("  ").append(file.getFileName()).append('\n');
        }
        return Sha256.of(manifest.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static boolean isWeightsOrConfig(String file) {
        return file.equals("config.json") || file.endsWith(".safetensors") || file.equals("model.safetensors.index.json");
    }
}
