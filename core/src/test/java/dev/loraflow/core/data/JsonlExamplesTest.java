package dev.loraflow.core.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.core.text.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JsonlExamplesTest {

    private static final int VOCAB = ByteLevelTokenizerJson.VOCAB_SIZE;
    private static final int IGNORE = -100;

    @TempDir
    static Path tokenizerDir;
    private static Tokenizer tokenizer;

    @TempDir
    Path tmp;

    @BeforeAll
    static void loadTokenizer() throws IOException {
        ByteLevelTokenizerJson.write(tokenizerDir, 64);
        tokenizer = Tokenizer.load(tokenizerDir.resolve(Tokenizer.FILE_NAME));
    }

    @AfterAll
    static void closeTokenizer() {
        tokenizer.close();
    }

    private Path file(String name, byte[] content) throws IOException {
        Path file = tmp.resolve(name);
        Files.write(file, content);
        return file;
    }

    private Path file(String name, String content) throws IOException {
        return file(name, content.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] concat(byte[]... parts) {
        var out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void readsEveryFormatInFileOrder() throws IOException {
        Path file = file("train.jsonl", "\uFEFF{\"input_ids\": [5, 6, 7]}\r\n"
                + "\n"
                + "   \t \n"
                + "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 256], \"id\": \"x-17\", \"meta\": {\"a\": [1]}}\n"
                + "{\"input_ids\": [9], \"labels\": null}\n"
                + "{\"text\": \"hé\"}\n"
                + "{\"prompt\": \"Q: \", \"completion\": \"A<|endoftext|>\"}\n"
                + "{\"prompt\": \"\", \"completion\": \"z\"}");
        List<Example> examples = JsonlExamples.read(file, tokenizer, VOCAB);
        assertEquals(List.of(
                Example.unmasked(new int[] {5, 6, 7}),
                new Example(new int[] {1, 2, 3}, new int[] {IGNORE, 2, 256}),
                Example.unmasked(new int[] {9}),
                Example.unmasked(new int[] {'h', 0xC3, 0xA9}),
                new Example(new int[] {'Q', ':', ' ', 'A', 256}, new int[] {IGNORE, IGNORE, IGNORE, 'A', 256}),
                Example.unmasked(new int[] {'z'})), examples);
    }

    @Test
    void tokenIdsNeedNoTokenizer() throws IOException {
        Path file = file("ids.jsonl", "{\"input_ids\": [0, 9]}\n");
        assertEquals(List.of(Example.unmasked(new int[] {0, 9})), JsonlExamples.read(file, null, 10));
    }

    /** Each bad line, placed after two good lines and a blank one, is reported as file:4: reason. */
    @Test
    void everyBadLineIsReportedWithItsNumber() throws IOException {
        String[][] corpus = {
                {"{\"input_ids\": [1, 2]", "not valid JSON"},
                {"{input_ids: [1]}", "not valid JSON"},
                {"{\"input_ids\": [1]} {\"input_ids\": [2]}", "not valid JSON"},
                {"{\"input_ids\": [1], \"input_ids\": [2]}", "not valid JSON"},
                {"{\"input_ids\": [NaN]}", "not valid JSON"},
                {"{\"text\": \"a\u0001b\"}", "not valid JSON"},
                {"[".repeat(5000) + "]".repeat(5000), "not valid JSON"},
                {"[1, 2, 3]", "must be a JSON object, found array"},
                {"\"text\"", "must be a JSON object, found string"},
                {"null", "must be a JSON object, found null"},
                {"{}", "has none of the keys"},
                {"{\"id\": 3}", "has none of the keys"},
                {"{\"input_ids\": \"1 2 3\"}", "'input_ids' must be an array of token ids, found string"},
                {"{\"input_ids\": null}", "'input_ids' must be an array of token ids, found null"},
                {"{\"input_ids\": []}", "'input_ids' is empty"},
                {"{\"input_ids\": [1, 2.5]}", "'input_ids'[1] must be an integer token id, found 2.5"},
                {"{\"input_ids\": [1, 2.0]}", "'input_ids'[1] must be an integer token id, found 2.0"},
                {"{\"input_ids\": [1, \"2\"]}", "'input_ids'[1] must be an integer token id, found \"2\""},
                {"{\"input_ids\": [[1]]}", "'input_ids'[0] must be an integer token id"},
                {"{\"input_ids\": [1, true]}", "'input_ids'[1] must be an integer token id, found true"},
                {"{\"input_ids\": [257]}", "'input_ids'[0] = 257 is outside the vocabulary [0, 257)"},
                {"{\"input_ids\": [-1]}", "'input_ids'[0] = -1 is outside the vocabulary"},
                {"{\"input_ids\": [-100]}", "'input_ids'[0] = -100 is outside the vocabulary"},
                {"{\"input_ids\": [4294967296]}", "'input_ids'[0] = 4294967296 is outside the vocabulary"},
                {"{\"input_ids\": [1" + "0".repeat(80) + "]}", "is outside the vocabulary"},
                {"{\"input_ids\": [1, 2], \"labels\": [1]}", "'labels' has 1 entries but 'input_ids' has 2"},
                {"{\"input_ids\": [1], \"labels\": [-99]}", "'labels'[0] = -99 is outside the vocabulary [0, 257) and is not -100"},
                {"{\"input_ids\": [1], \"labels\": \"1\"}", "'labels' must be an array of token ids, found string"},
                {"{\"labels\": [1]}", "'labels' without 'input_ids'"},
                {"{\"input_ids\": [1], \"text\": \"a\"}", "mixes the keys of different formats"},
                {"{\"text\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}", "mixes the keys of different formats"},
                {"{\"text\": 5}", "'text' must be a string, found number"},
                {"{\"text\": [\"a\"]}", "'text' must be a string, found array"},
                {"{\"text\": \"\"}", "'text' is empty"},
                {"{\"prompt\": \"a\"}", "'prompt' without 'completion'"},
                {"{\"completion\": \"a\"}", "'completion' without 'prompt'"},
                {"{\"prompt\": \"a\", \"completion\": \"\"}", "'completion' is empty"},
                {"{\"prompt\": null, \"completion\": \"a\"}", "'prompt' must be a string, found null"},
                {"{\"prompt\": \"a\", \"completion\": {\"x\": 1}}", "'completion' must be a string, found object"},
        };
        String head = "{\"input_ids\": [1]}\n{\"text\": \"ok\"}\n\n";
        for (int i = 0; i < corpus.length; i++) {
            Path file = file("bad" + i + ".jsonl", head + corpus[i][0] + "\n{\"input_ids\": [2]}\n");
            var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, tokenizer, VOCAB), corpus[i][0]);
            assertTrue(e.getMessage().startsWith(file + ":4: ") && e.getMessage().contains(corpus[i][1]),
                    "line " + corpus[i][0] + " gave: " + e.getMessage());
        }
    }

    @Test
    void bytesThatAreNotUtf8AreReportedWithTheirPosition() throws IOException {
        byte[][] badLines = {
                {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xFF, '"', '}'},
                // An overlong encoding of '/', and a UTF-16 surrogate encoded on its own (CESU-8).
                {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xC0, (byte) 0xAF, '"', '}'},
                {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xED, (byte) 0xA0, (byte) 0x80, '"', '}'},
                // A sequence cut off by the end of the line.
                {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', 'a', (byte) 0xE4, (byte) 0xB8},
        };
        int[] firstBadByte = {10, 10, 10, 11};
        for (int i = 0; i < badLines.length; i++) {
            Path file = file("latin" + i + ".jsonl", concat(utf8("{\"text\": \"é\"}\n"), badLines[i], utf8("\n")));
            var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, tokenizer, VOCAB));
            assertEquals(file + ":2: not valid UTF-8 (byte " + firstBadByte[i] + " of the line)", e.getMessage());
        }
    }

    @Test
    void textNeedsATokenizer() throws IOException {
        Path file = file("text.jsonl", "{\"input_ids\": [1]}\n{\"prompt\": \"a\", \"completion\": \"b\"}\n");
        var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, null, VOCAB));
        assertTrue(e.getMessage().startsWith(file + ":2: 'prompt' needs a tokenizer"), e.getMessage());
    }

    @Test
    void tokenizerIdsBeyondTheModelsVocabularyAreRejected() throws IOException {
        Path file = file("wide.jsonl", "{\"text\": \"plain\"}\n{\"text\": \"é\"}\n");
        var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, tokenizer, 128));
        assertTrue(e.getMessage().startsWith(file + ":2: the tokenizer turns 'text' into token id 195, outside"),
                e.getMessage());
    }

    @Test
    void severalBadLinesAreListedTogetherUpToALimit() throws IOException {
        Path file = file("several.jsonl", "{\"input_ids\": [1]}\n{\"input_ids\": []}\n{}\n{\"input_ids\": [1]}\n[\n");
        var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, null, VOCAB));
        assertTrue(e.getMessage().startsWith(file + ": 3 bad lines:"), e.getMessage());
        for (int line : new int[] {2, 3, 5}) {
            assertTrue(e.getMessage().contains("\n  " + file + ":" + line + ": "), e.getMessage());
        }

        Path many = file("many.jsonl", "{}\n".repeat(50));
        var stopped = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(many, null, VOCAB));
        assertEquals(JsonlExamples.MAX_REPORTED_PROBLEMS, stopped.getMessage().split("\n").length - 1);
        assertTrue(stopped.getMessage().contains("reading stopped at the 20th"), stopped.getMessage());
        assertTrue(stopped.getMessage().contains(many + ":20: ") && !stopped.getMessage().contains(many + ":21: "));
    }

    @Test
    void aFileWithoutExamplesIsAnError() throws IOException {
        for (String content : List.of("", "\n", "  \n\t\r\n\n")) {
            Path file = file("empty" + content.length() + ".jsonl", content);
            var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, tokenizer, VOCAB));
            assertTrue(e.getMessage().equals(file + ": holds no example (it is empty or every line is blank)"),
                    e.getMessage());
        }
    }

    @Test
    void anOverlongLineIsSkippedAndTheNextLinesStillRead() throws IOException {
        String fits = "{\"input_ids\": [1, 2, 3]}"; // 24 bytes
        Path file = file("long.jsonl", fits + "\n" + "{\"text\": \"" + "x".repeat(200) + "\"}\n" + fits + "\n[\n");
        var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, tokenizer, VOCAB, 24));
        assertTrue(e.getMessage().startsWith(file + ": 2 bad lines:"), e.getMessage());
        assertTrue(e.getMessage().contains(file + ":2: line is longer than 24 bytes"), e.getMessage());
        assertTrue(e.getMessage().contains(file + ":4: not valid JSON"), e.getMessage());

        Path exact = file("exact.jsonl", fits + "\r\n" + fits);
        assertEquals(2, JsonlExamples.read(exact, tokenizer, VOCAB, 25).size());
    }

    @Test
    void linesOverSixteenMebibytesAreRejected() throws IOException {
        String text = "a".repeat(JsonlExamples.MAX_LINE_BYTES);
        Path file = file("huge.jsonl", "{\"text\": \"" + text + "\"}\n{\"input_ids\": [1]}\n");
        var e = assertThrows(TrainingDataException.class, () -> JsonlExamples.read(file, tokenizer, VOCAB));
        assertEquals(file + ":1: line is longer than " + (16 << 20) + " bytes", e.getMessage());
    }
}
