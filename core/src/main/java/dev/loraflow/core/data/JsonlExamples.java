package dev.loraflow.core.data;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.kernels.Softmax;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Reads training examples from a JSONL file, one JSON object a line, in one of three forms:
 * <ul>
 *   <li>{@code {"input_ids": [..], "labels": [..]}}: token ids as given; labels default to the ids
 *       and may hold {@value Softmax#IGNORE_INDEX};
 *   <li>{@code {"text": ".."}}: the tokenized text, every token in the loss;
 *   <li>{@code {"prompt": "..", "completion": ".."}}: the prompt's tokens then the completion's,
 *       tokenized separately, only the completion in the loss.
 * </ul>
 * Text needs a tokenizer; no special tokens are added. Other keys (ids, metadata) are ignored, blank
 * lines skipped, a UTF-8 byte order mark at the start tolerated. Every bad line is reported as
 * {@code file:line: reason}, up to {@value #MAX_REPORTED_PROBLEMS}; no line is read whole beyond
 * {@link #MAX_LINE_BYTES}.
 */
public final class JsonlExamples {

    /** The longest line read, in bytes; a longer one is a bad line and is skipped without being held. */
    public static final int MAX_LINE_BYTES = 16 << 20;
    static final int MAX_REPORTED_PROBLEMS = 20;

    private static final String INPUT_IDS = "input_ids";
    private static final String LABELS = "labels";
    private static final String TEXT = "text";
    private static final String PROMPT = "prompt";
    private static final String COMPLETION = "completion";

    // Python's json keeps the last of two equal keys and ignores nothing after the value; both hide mistakes.
    private static final ObjectMapper JSON = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build())
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private JsonlExamples() {}

    /**
     * @param tokenizer the model's tokenizer, or null when it has none (then only {@code input_ids} lines work)
     * @param vocabSize every token id must lie in [0, vocabSize)
     * @return the examples in file order, at least one
     * @throws TrainingDataException listing the bad lines, or when the file holds no example
     */
    public static List<Example> read(Path file, Tokenizer tokenizer, int vocabSize) throws IOException {
        return read(file, tokenizer, vocabSize, MAX_LINE_BYTES);
    }

    static List<Example> read(Path file, Tokenizer tokenizer, int vocabSize, int maxLineBytes) throws IOException {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabSize must be positive, found " + vocabSize);
        }
        var parser = new LineParser(tokenizer, vocabSize);
        List<Example> examples = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        try (var lines = new LineReader(Files.newInputStream(file), maxLineBytes)) {
            while (problems.size() < MAX_REPORTED_PROBLEMS && lines.next()) {
                try {
                    Example example = parser.parse(lines);
                    if (example != null) {
                        examples.add(example);
                    }
                } catch (BadLine bad) {
                    problems.add(file + ":" + lines.lineNumber() + ": " + bad.getMessage());
                }
            }
        }
        if (problems.size() == 1) {
            throw new TrainingDataException(problems.getFirst());
        }
        if (!problems.isEmpty()) {
            String count = problems.size() < MAX_REPORTED_PROBLEMS
                    ? problems.size() + " bad lines"
                    : "bad lines (reading stopped at the " + MAX_REPORTED_PROBLEMS + "th)";
            throw new TrainingDataException(file + ": " + count + ":\n  " + String.join("\n  ", problems));
        }
        if (examples.isEmpty()) {
            throw new TrainingDataException(file + ": holds no example (it is empty or every line is blank)");
        }
        return examples;
    }

    /** Why one line is unusable; becomes a {@code file:line: reason} entry. */
    private static final class BadLine extends Exception {
        BadLine(String reason) {
            super(reason, null, false, false);
        }
    }

    private static final class LineParser {
        private final Tokenizer tokenizer;
        private final int vocabSize;
        private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);

        LineParser(Tokenizer tokenizer, int vocabSize) {
            this.tokenizer = tokenizer;
            this.vocabSize = vocabSize;
        }

        /** The line's example, or null for a blank line. */
        Example parse(LineReader line) throws BadLine {
            if (line.tooLong()) {
                throw new BadLine("line is longer than " + line.maxLineBytes() + " bytes");
            }
            String text = decode(line);
            if (text.isBlank()) {
                return null;
            }
            JsonNode root;
            try {
                root = JSON.readTree(text);
            } catch (JacksonException e) {
                throw new BadLine("not valid JSON: " + e.getOriginalMessage());
            }
            if (!root.isObject()) {
                throw new BadLine("must be a JSON object, found " + typeOf(root));
            }
            boolean ids = root.has(INPUT_IDS) || root.has(LABELS);
            boolean plain = root.has(TEXT);
            boolean pair = root.has(PROMPT) || root.has(COMPLETION);
            int formats = (ids ? 1 : 0) + (plain ? 1 : 0) + (pair ? 1 : 0);
            if (formats > 1) {
                throw new BadLine("mixes the keys of different formats; a line holds either " + INPUT_IDS
                        + " (with optional " + LABELS + "), or " + TEXT + ", or " + PROMPT + " and " + COMPLETION);
            }
            if (ids) {
                return tokenIds(root);
            } else if (plain) {
                return Example.unmasked(encode(root, TEXT));
            } else if (pair) {
                return promptCompletion(root);
            }
            throw new BadLine("has none of the keys " + INPUT_IDS + ", " + TEXT + ", " + PROMPT + "/" + COMPLETION);
        }

        /** Strips a line end's CR and a leading byte order mark, and rejects bytes that are not UTF-8. */
        private String decode(LineReader line) throws BadLine {
            byte[] bytes = line.bytes();
            int start = 0;
            int end = line.length();
            if (end > 0 && bytes[end - 1] == '\r') {
                end--;
            }
            if (line.lineNumber() == 1 && end >= 3 && (bytes[0] & 0xFF) == 0xEF && (bytes[1] & 0xFF) == 0xBB
                    && (bytes[2] & 0xFF) == 0xBF) {
                start = 3;
            }
            ByteBuffer in = ByteBuffer.wrap(bytes, start, end - start);
            // UTF-8 never needs more chars than bytes.
            CharBuffer out = CharBuffer.allocate(end - start);
            utf8.reset();
            CoderResult result = utf8.decode(in, out, true);
            if (!result.isError()) {
                result = utf8.flush(out);
            }
            if (result.isError()) {
                throw new BadLine("not valid UTF-8 (byte " + (in.position() + 1) + " of the line)");
            }
            return out.flip().toString();
        }

        private Example tokenIds(JsonNode root) throws BadLine {
            JsonNode idsNode = root.get(INPUT_IDS);
            if (idsNode == null) {
                throw new BadLine("'" + LABELS + "' without '" + INPUT_IDS + "'");
            }
            int[] inputIds = ints(idsNode, INPUT_IDS, false);
            JsonNode labelsNode = root.get(LABELS);
            if (labelsNode == null || labelsNode.isNull()) {
                return Example.unmasked(inputIds);
            }
            int[] labels = ints(labelsNode, LABELS, true);
            if (labels.length != inputIds.length) {
                throw new BadLine("'" + LABELS + "' has " + labels.length + " entries but '" + INPUT_IDS + "' has "
                        + inputIds.length);
            }
            return new Example(inputIds, labels);
        }

        private int[] ints(JsonNode array, String key, boolean ignoreAllowed) throws BadLine {
            if (!array.isArray()) {
                throw new BadLine("'" + key + "' must be an array of token ids, found " + typeOf(array));
            }
            if (array.isEmpty()) {
                throw new BadLine("'" + key + "' is empty");
            }
            int[] values = new int[array.size()];
            for (int i = 0; i < values.length; i++) {
                JsonNode value = array.get(i);
                if (!value.isIntegralNumber()) {
                    throw new BadLine("'" + key + "'[" + i + "] must be an integer token id, found " + shortText(value));
                }
                boolean ignored = ignoreAllowed && value.canConvertToInt() && value.intValue() == Softmax.IGNORE_INDEX;
                if (!ignored && !(value.canConvertToInt() && value.intValue() >= 0 && value.intValue() < vocabSize)) {
                    throw new BadLine("'" + key + "'[" + i + "] = " + shortText(value) + " is outside the vocabulary [0, "
                            + vocabSize + ")" + (ignoreAllowed ? " and is not " + Softmax.IGNORE_INDEX : ""));
                }
                values[i] = value.intValue();
            }
            return values;
        }

        private Example promptCompletion(JsonNode root) throws BadLine {
            int[] prompt = encode(root, PROMPT);
            int[] completion = encode(root, COMPLETION);
            if (completion.length == 0) {
                throw new BadLine("'" + COMPLETION + "' is empty: the example would have nothing to learn");
            }
            int[] inputIds = Arrays.copyOf(prompt, prompt.length + completion.length);
            System.arraycopy(completion, 0, inputIds, prompt.length, completion.length);
            int[] labels = inputIds.clone();
            Arrays.fill(labels, 0, prompt.length, Softmax.IGNORE_INDEX);
            return new Example(inputIds, labels);
        }

        /** The tokens of a string field; only {@code prompt} may encode to nothing. */
        private int[] encode(JsonNode root, String key) throws BadLine {
            JsonNode value = root.get(key);
            if (value == null) {
                throw new BadLine("'" + (key.equals(PROMPT) ? COMPLETION : PROMPT) + "' without '" + key + "'");
            }
            if (!value.isTextual()) {
                throw new BadLine("'" + key + "' must be a string, found " + typeOf(value));
            }
            if (tokenizer == null) {
                throw new BadLine("'" + key + "' needs a tokenizer, and the model directory has no "
                        + Tokenizer.FILE_NAME + "; give token ids as '" + INPUT_IDS + "' instead");
            }
            int[] ids = tokenizer.encode(value.textValue());
            if (ids.length == 0 && !key.equals(PROMPT)) {
                throw new BadLine("'" + key + "' is empty");
            }
            for (int id : ids) {
                if (id >= vocabSize) {
                    throw new BadLine("the tokenizer turns '" + key + "' into token id " + id
                            + ", outside the model's vocabulary [0, " + vocabSize + ")");
                }
            }
            return ids;
        }

        private static String typeOf(JsonNode node) {
            return node.getNodeType().name().toLowerCase(Locale.ROOT);
        }

        /** A JSON value as written, cut short: a hostile line must not make a megabyte error message. */
        private static String shortText(JsonNode value) {
            String text = value.toString();
            return text.length() <= 40 ? text : text.substring(0, 40) + "…";
        }
    }

    /**
     * Splits a byte stream at '\n', holding at most {@code maxLineBytes} of a line: a longer line is
     * flagged and the rest of it skipped unread into memory.
     */
    private static final class LineReader implements AutoCloseable {
        private final InputStream in;
        private final int maxLineBytes;
        private final byte[] chunk = new byte[1 << 16];
        private int chunkPosition;
        private int chunkLimit;
        private byte[] line = new byte[1 << 10];
        private int lineLength;
        private boolean tooLong;
        private long lineNumber;

        LineReader(InputStream in, int maxLineBytes) {
            this.in = in;
            this.maxLineBytes = maxLineBytes;
        }

        /** Moves to the next line; false at the end of the file (a final newline ends the last line, it does not start one). */
        boolean next() throws IOException {
            lineLength = 0;
            tooLong = false;
            boolean any = false;
            while (true) {
                if (chunkPosition == chunkLimit) {
                    int read = in.read(chunk);
                    if (read < 0) {
                        if (any) {
                            lineNumber++;
                        }
                        return any;
                    }
                    chunkPosition = 0;
                    chunkLimit = read;
                    continue;
                }
                any = true;
                int end = chunkPosition;
                while (end < chunkLimit && chunk[end] != '\n') {
                    end++;
                }
                append(chunkPosition, end - chunkPosition);
                if (end < chunkLimit) {
                    chunkPosition = end + 1;
                    lineNumber++;
                    return true;
                }
                chunkPosition = chunkLimit;
            }
        }

        private void append(int from, int count) {
            if (tooLong) {
                return;
            }
            if ((long) lineLength + count > maxLineBytes) {
                tooLong = true;
                lineLength = 0;
                return;
            }
            if (lineLength + count > line.length) {
                line = Arrays.copyOf(line, (int) Math.min(maxLineBytes, Math.max(2L * line.length, lineLength + count)));
            }
            System.arraycopy(chunk, from, line, lineLength, count);
            lineLength += count;
        }

        byte[] bytes() {
            return line;
        }

        int length() {
            return lineLength;
        }

        boolean tooLong() {
            return tooLong;
        }

        int maxLineBytes() {
            return maxLineBytes;
        }

        long lineNumber() {
            return lineNumber;
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }
}
