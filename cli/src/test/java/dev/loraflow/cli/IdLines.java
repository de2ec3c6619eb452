package dev.loraflow.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.IntUnaryOperator;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/** JSONL data of {@code input_ids} lines, as the commands' --data and --verify-data read them. */
final class IdLines {

    private IdLines() {}

    /** {@code lines} lines, line i of {@code length(i)} ids (t·7 + i) mod {@code vocab}; returns {@code file}. */
    static Path write(Path file, int lines, IntUnaryOperator length, int vocab) throws IOException {
        return Files.writeString(file, IntStream.range(0, lines).mapToObj(i -> IntStream.range(0, length.applyAsInt(i))
                .mapToObj(t -> Integer.toString((t * 7 + i) % vocab)).collect(Collectors.joining(",", "{\"input_ids\":[", "]}\n")))
                .collect(Collectors.joining()));
    }
}
