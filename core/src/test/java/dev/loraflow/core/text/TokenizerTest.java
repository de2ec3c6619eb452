package dev.loraflow.core.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {

    /** Every ASCII character, controls included, then two- to four-byte UTF-8 sequences. */
    private static final String MIXED_TEXT;

    static {
        var text = new StringBuilder();
        for (char c = 0; c < 128; c++) {
            text.append(c);
        }
        MIXED_TEXT = text.append(" héllo wörld, ¬®ÿ Ā ✓ 世界 🙂🚀  end ").toString();
    }

    private static int[] utf8Ids(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = Byte.toUnsignedInt(bytes[i]);
        }
        return ids;
    }

    private static Path byteLevelTokenizer(Path dir) throws IOException {
        ByteLevelTokenizerJson.write(dir, 64);
        return dir.resolve(Tokenizer.FILE_NAME);
    }

    @Test
    void byteLevelTokensAreGpt2sBytesToUnicode() {
        Set<String> distinct = new HashSet<>();
        for (int b = 0; b < 256; b++) {
            String token = ByteLevelTokenizerJson.byteToken(b);
            assertEquals(1, token.length());
            assertTrue(!Character.isWhitespace(token.charAt(0)) && !Character.isISOControl(token.charAt(0)), "byte " + b);
            distinct.add(token);
        }
        assertEquals(256, distinct.size());
        // GPT-2's well-known spellings: space is 'Ġ', newline 'Ċ', NUL 'Ā', and the printable bytes are themselves.
        assertEquals("\u0120", ByteLevelTokenizerJson.byteToken(' '));
        assertEquals("\u010A", ByteLevelTokenizerJson.byteToken('\n'));
        assertEquals("\u0100", ByteLevelTokenizerJson.byteToken(0));
        assertEquals("\u0143", ByteLevelTokenizerJson.byteToken(0xAD));
        assertEquals("A", ByteLevelTokenizerJson.byteToken('A'));
        assertEquals("\u00FF", ByteLevelTokenizerJson.byteToken(0xFF));
    }

    @Test
    void byteLevelTokenizerEncodesTextAsItsUtf8Bytes(@TempDir Path tmp) throws IOException {
        try (Tokenizer tokenizer = Tokenizer.load(byteLevelTokenizer(tmp))) {
            assertEquals(ByteLevelTokenizerJson.VOCAB_SIZE, tokenizer.vocabSize());
            for (String text : List.of("", "a", "Hello, world!", "  leading and trailing  ", MIXED_TEXT)) {
                int[] ids = tokenizer.encode(text);
                assertArrayEquals(utf8Ids(text), ids, text);
                assertEquals(text, tokenizer.decode(ids));
            }
        }
    }

    @Test
    void endOfTextIsOneSpecialTokenAnywhereInTheText(@TempDir Path tmp) throws IOException {
        try (Tokenizer tokenizer = Tokenizer.load(byteLevelTokenizer(tmp))) {
            assertArrayEquals(new int[] {256}, tokenizer.encode("<|endoftext|>"));
            assertArrayEquals(new int[] {'a', 256, ' ', 'b', 256}, tokenizer.encode("a<|endoftext|> b<|endoftext|>"));
            assertEquals("a<|endoftext|> b", tokenizer.decode(new int[] {'a', 256, ' ', 'b'}));
            assertEquals(OptionalInt.of(256), tokenizer.tokenId("<|endoftext|>"));
            assertEquals(OptionalInt.of(256), tokenizer.eosTokenId());
            assertEquals(OptionalInt.of(' '), tokenizer.tokenId("\u0120"));
            assertEquals(OptionalInt.empty(), tokenizer.tokenId("ab"));
        }
    }

    @Test
    void withoutTokenizerConfigThereIsNoEndOfTextToken(@TempDir Path tmp) throws IOException {
        Path file = byteLevelTokenizer(tmp);
        Files.delete(tmp.resolve(Tokenizer.CONFIG_FILE_NAME));
        try (Tokenizer tokenizer = Tokenizer.load(file)) {
            assertEquals(OptionalInt.empty(), tokenizer.eosTokenId());
            assertEquals(OptionalInt.of(256), tokenizer.tokenId("<|endoftext|>"));
        }
    }

    @Test
    void longTextsAreNeverTruncated(@TempDir Path tmp) throws IOException {
        // The library's default would cut at 512 tokens.
        String text = "0123456789 ".repeat(300);
        try (Tokenizer tokenizer = Tokenizer.load(byteLevelTokenizer(tmp))) {
            int[] ids = tokenizer.encode(text);
            assertEquals(text.length(), ids.length);
            assertEquals(text, tokenizer.decode(ids));
        }
    }

    @Test
    void aUnigramVocabularyListsTokensById(@TempDir Path tmp) throws IOException {
        Path file = tmp.resolve(Tokenizer.FILE_NAME);
        Files.writeString(file, """
                {"version": "1.0", "truncation": null, "padding": null, "normalizer": null,
                 "added_tokens": [{"id": 0, "content": "<unk>", "single_word": false, "lstrip": false,
                                   "rstrip": false, "normalized": false, "special": true}],
                 "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
                 "model": {"type": "Unigram", "unk_id": 0,
                           "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -1.5], ["ab", -0.5]]}}
                """);
        try (Tokenizer tokenizer = Tokenizer.load(file)) {
            assertEquals(4, tokenizer.vocabSize());
            assertEquals(OptionalInt.of(3), tokenizer.tokenId("ab"));
            assertArrayEquals(new int[] {3, 2, 1}, tokenizer.encode("ab b a"));
        }
    }

    @Test
    void decodingAnIdOutsideTheVocabularyIsAnError(@TempDir Path tmp) throws IOException {
        try (Tokenizer tokenizer = Tokenizer.load(byteLevelTokenizer(tmp))) {
            var e = assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {1, 257}));
            assertTrue(e.getMessage().contains("token id 257 at index 1"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {-1}));
        }
    }

    @Test
    void badTokenizerFilesAreNamedInTheError(@TempDir Path tmp) throws IOException {
        Path missing = tmp.resolve("nowhere/tokenizer.json");
        var e = assertThrows(TokenizerFormatException.class, () -> Tokenizer.load(missing));
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("no such file"), e.getMessage());

        String valid = ByteLevelTokenizerJson.tokenizerJson();
        List<String[]> cases = List.of(
                new String[] {valid.substring(0, valid.length() / 2), "not valid JSON"},
                new String[] {"[1, 2]", "must hold a JSON object"},
                new String[] {"{\"model\": {\"type\": \"BPE\"}}", "no model.vocab"},
                new String[] {"{\"model\": {\"vocab\": {\"a\": -3}}}", "non-negative integer id"},
                new String[] {"{\"model\": {\"vocab\": {\"a\": 0, \"a\": 1}}}", "not valid JSON"},
                new String[] {"{\"model\": {\"vocab\": {}}, \"added_tokens\": []}", "the vocabulary is empty"},
                new String[] {"{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": \"x\"}]}", "added token"},
                new String[] {valid.replace("\"BPE\"", "\"Telepathy\""), "the tokenizers library rejects it"});
        for (String[] badCase : cases) {
            Path file = tmp.resolve("bad" + badCase.hashCode() + ".json");
            Files.writeString(file, badCase[0]);
            var bad = assertThrows(TokenizerFormatException.class, () -> Tokenizer.load(file), badCase[1]);
            assertTrue(bad.getMessage().contains(file.toString()) && bad.getMessage().contains(badCase[1]),
                    bad.getMessage());
        }
    }

    @Test
    void anEosTokenOutsideTheVocabularyIsAnError(@TempDir Path tmp) throws IOException {
        Path file = byteLevelTokenizer(tmp);
        Files.writeString(tmp.resolve(Tokenizer.CONFIG_FILE_NAME), "{\"eos_token\": {\"content\": \"</s>\"}}");
        var e = assertThrows(TokenizerFormatException.class, () -> Tokenizer.load(file));
        assertTrue(e.getMessage().contains("eos_token \"</s>\" is not in the vocabulary"), e.getMessage());
    }

    /**
     * A fresh JVM with an empty DJL cache: the native library comes out of the jar into the cache given,
     * and offline mode is on before DJL's first call.
     */
    @Test
    void aFreshJvmExtractsTheNativeLibraryIntoTheCacheItIsGiven(@TempDir Path tmp) throws Exception {
        Path file = byteLevelTokenizer(tmp.resolve("model"));
        Path cache = tmp.resolve("djl-cache");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-cp", System.getProperty("java.class.path"),
                "-DDJL_CACHE_DIR=" + cache, FreshJvm.class.getName(), file.toString()));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().remove("DJL_OFFLINE");
        builder.environment().remove("ENGINE_CACHE_DIR");
        builder.environment().remove("DJL_CACHE_DIR");
        Process process = builder.start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("ids=[104, 105, 256] offline=true"), output);
        try (Stream<Path> files = Files.walk(cache)) {
            assertTrue(files.anyMatch(path -> path.getFileName().toString().equals(System.mapLibraryName("tokenizers"))),
                    "no native library under " + cache);
        }
    }

    /** The child JVM of the test above. */
    static final class FreshJvm {
        public static void main(String[] args) throws IOException {
            try (Tokenizer tokenizer = Tokenizer.load(Path.of(args[0]))) {
                System.out.println("ids=" + Arrays.toString(tokenizer.encode("hi<|endoftext|>"))
                        + " offline=" + System.getProperty("ai.djl.offline"));
            }
        }
    }
}
