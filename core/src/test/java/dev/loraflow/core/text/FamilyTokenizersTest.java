package dev.loraflow.core.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * tokenizer.json files in the families' own formats, run through DJL's tokenizers binding: Llama 3's and
 * Qwen2's byte-level BPE behind a regex Split, Llama 2's, Mistral's and Gemma's SentencePiece-style BPE
 * with byte fallback, with their special and added tokens; and the tokenizer init-model writes, whose
 * merges fill any vocabulary so every id decodes.
 */
class FamilyTokenizersTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    /** Llama 3's pre-tokenizer pattern (tokenizer.json of meta-llama/Llama-3.2-1B): numbers in runs of up to 3 digits. */
    private static final String LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** Qwen2's (Qwen/Qwen2.5-0.5B): every digit on its own. */
    private static final String QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final String MIXED_TEXT = "Hello world, naïve café 12345 日本語 🙂\nend";

    @TempDir
    Path dir;

    @ParameterizedTest(name = "vocab {0}")
    @ValueSource(ints = {257, 300, 1000, 32000, 151936})
    void initModelsTokenizerDecodesEveryIdAndEncodesItsTextAgain(int vocab) throws IOException {
        ByteLevelTokenizerJson.write(dir, 64, vocab);
        try (Tokenizer tokenizer = Tokenizer.load(dir.resolve(Tokenizer.FILE_NAME))) {
            assertEquals(vocab, tokenizer.vocabSize());
            Set<String> merged = new HashSet<>();
            // Every id up to 2000, then a spread sample and the last one.
            TreeSet<Integer> ids = new TreeSet<>();
            for (int id = 0; id < vocab; id = id < 2000 ? id + 1 : id + 997) {
                ids.add(id);
            }
            ids.add(vocab - 1);
            for (int id : ids) {
                checkId(tokenizer, id, merged);
            }
            assertEquals(MIXED_TEXT, tokenizer.decode(tokenizer.encode(MIXED_TEXT)));
        }
        assertFalse(ByteLevelTokenizerJson.fits(ByteLevelTokenizerJson.MAX_VOCAB_SIZE + 1));
        assertFalse(ByteLevelTokenizerJson.fits(256));
    }

    private static void checkId(Tokenizer tokenizer, int id, Set<String> merged) {
        String text = tokenizer.decode(new int[] {id});
        if (id == ByteLevelTokenizerJson.END_OF_TEXT_ID) {
            assertEquals(ByteLevelTokenizerJson.END_OF_TEXT, text);
            return;
        }
        if (id > ByteLevelTokenizerJson.END_OF_TEXT_ID) {
            assertTrue(text.matches("[a-z]{2,4}"), "id " + id + " decodes to a word: " + text);
            assertTrue(merged.add(text), "id " + id + " decodes to a text of its own: " + text);
        }
        assertEquals(text, tokenizer.decode(tokenizer.encode(text)), "id " + id);
    }

    /** A byte-level BPE vocabulary: the 256 byte symbols, then one token per merge, in order. */
    private static ObjectNode byteLevelBpe(String pattern, boolean ignoreMerges, List<String> merges,
                                           List<String> addedTokens, boolean nfc) {
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ObjectNode vocab = JSON.createObjectNode();
        for (int b = 0; b < 256; b++) {
            vocab.put(ByteLevelTokenizerJson.byteToken(b), b);
        }
        for (String merge : merges) {
            vocab.put(merge.replace(" ", ""), vocab.size());
        }
        ArrayNode added = root.putArray("added_tokens");
        for (String token : addedTokens) {
            int id = vocab.size() + added.size();
            added.addObject().put("id", id).put("content", token).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        if (nfc) {
            root.putObject("normalizer").put("type", "NFC");
        } else {
            root.putNull("normalizer");
        }
        ObjectNode preTokenizer = root.putObject("pre_tokenizer");
        preTokenizer.put("type", "Sequence");
        ArrayNode steps = preTokenizer.putArray("pretokenizers");
        ObjectNode split = steps.addObject();
        split.put("type", "Split");
        split.putObject("pattern").put("Regex", pattern);
        split.put("behavior", "Isolated");
        split.put("invert", false);
        steps.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true)
                .put("use_regex", false);
        root.putObject("post_processor").put("type", "ByteLevel").put("add_prefix_space", true)
                .put("trim_offsets", false).put("use_regex", true);
        root.putObject("decoder").put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true)
                .put("use_regex", true);
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", ignoreMerges);
        model.set("vocab", vocab);
        ArrayNode mergeList = model.putArray("merges");
        merges.forEach(mergeList::add);
        return root;
    }

    private static final List<String> BYTE_LEVEL_MERGES = List.of("H e", "He l", "Hel l", "Hell o", "Ġ w", "Ġw o",
            "Ġwo r", "Ġwor l", "Ġworl d", "1 2", "12 3", "4 5");

    private Tokenizer write(String name, ObjectNode tokenizerJson, String eosToken) throws IOException {
        Path directory = Files.createDirectories(dir.resolve(name));
        Files.writeString(directory.resolve(Tokenizer.FILE_NAME), JSON.writeValueAsString(tokenizerJson));
        Files.writeString(directory.resolve(Tokenizer.CONFIG_FILE_NAME), "{\"eos_token\": \"" + eosToken + "\"}");
        return Tokenizer.load(directory.resolve(Tokenizer.FILE_NAME));
    }

    private static int id(Tokenizer tokenizer, String token) {
        return tokenizer.tokenId(token).orElseThrow(() -> new AssertionError("no token " + token));
    }

    @Test
    void llama3ByteLevelBpeWithItsRegexAndSpecialTokens() throws IOException {
        try (Tokenizer tokenizer = write("llama3", byteLevelBpe(LLAMA3_PATTERN, true, BYTE_LEVEL_MERGES,
                List.of("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
                false), "<|eot_id|>")) {
            assertArrayEquals(new int[] {id(tokenizer, "<|begin_of_text|>"), id(tokenizer, "Hello"),
                    id(tokenizer, "Ġworld"), id(tokenizer, "<|eot_id|>")}, tokenizer.encode("<|begin_of_text|>Hello world<|eot_id|>"));
            assertArrayEquals(new int[] {id(tokenizer, "123"), id(tokenizer, "45")}, tokenizer.encode("12345"),
                    "digits in runs of three");
            assertEquals(id(tokenizer, "<|eot_id|>"), tokenizer.eosTokenId().orElseThrow());
            assertEquals(MIXED_TEXT, tokenizer.decode(tokenizer.encode(MIXED_TEXT)));
            String chat = "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>";
            assertEquals(chat, tokenizer.decode(tokenizer.encode(chat)));
        }
    }

    @Test
    void qwen2ByteLevelBpeSplitsEveryDigitAndKeepsChatMlTokensWhole() throws IOException {
        try (Tokenizer tokenizer = write("qwen2", byteLevelBpe(QWEN2_PATTERN, false, BYTE_LEVEL_MERGES,
                List.of("<|endoftext|>", "<|im_start|>", "<|im_end|>"), true), "<|im_end|>")) {
            int[] digits = tokenizer.encode("12345");
            assertArrayEquals(new int[] {'1', '2', '3', '4', '5'}, digits, "one digit a token, the merges never apply");
            String chat = "<|im_start|>user\nHello world<|im_end|>\n";
            int[] ids = tokenizer.encode(chat);
            assertEquals(id(tokenizer, "<|im_start|>"), ids[0]);
            assertTrue(contains(ids, id(tokenizer, "Ġworld")), "merged word");
            assertEquals(id(tokenizer, "<|im_end|>"), ids[ids.length - 2]);
            assertEquals(chat, tokenizer.decode(ids));
            assertEquals(MIXED_TEXT, tokenizer.decode(tokenizer.encode(MIXED_TEXT)));
        }
    }

    /**
     * SentencePiece converted to BPE, as Llama 2's and Mistral's tokenizer.json are: the normalizer puts ▁
     * for spaces (and one before the text), pieces merge, characters outside the vocabulary fall back to
     * their UTF-8 bytes &lt;0xNN&gt;, and the decoder undoes each step.
     */
    private static ObjectNode sentencePieceBpe(boolean dummyPrefix, List<String> pieces, List<String> merges,
                                               List<String> addedTokens) {
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ObjectNode vocab = JSON.createObjectNode();
        vocab.put("<unk>", 0);
        vocab.put("<s>", 1);
        vocab.put("</s>", 2);
        for (int b = 0; b < 256; b++) {
            vocab.put("<0x%02X>".formatted(b), vocab.size());
        }
        pieces.forEach(piece -> vocab.put(piece, vocab.size()));
        ArrayNode added = root.putArray("added_tokens");
        for (String token : List.of("<unk>", "<s>", "</s>")) {
            added.addObject().put("id", vocab.get(token).intValue()).put("content", token).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        for (String token : addedTokens) {
            int id = vocab.size() + added.size() - 3;
            added.addObject().put("id", id).put("content", token).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        ObjectNode normalizer = root.putObject("normalizer");
        normalizer.put("type", "Sequence");
        ArrayNode normalizers = normalizer.putArray("normalizers");
        if (dummyPrefix) {
            normalizers.addObject().put("type", "Prepend").put("prepend", "▁");
        }
        ObjectNode replace = normalizers.addObject().put("type", "Replace");
        replace.putObject("pattern").put("String", " ");
        replace.put("content", "▁");
        root.putNull("pre_tokenizer");
        root.putNull("post_processor");
        ObjectNode decoder = root.putObject("decoder");
        decoder.put("type", "Sequence");
        ArrayNode decoders = decoder.putArray("decoders");
        ObjectNode undoSpaces = decoders.addObject().put("type", "Replace");
        undoSpaces.putObject("pattern").put("String", "▁");
        undoSpaces.put("content", " ");
        decoders.addObject().put("type", "ByteFallback");
        decoders.addObject().put("type", "Fuse");
        if (dummyPrefix) {
            decoders.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
        }
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.put("unk_token", "<unk>");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", true);
        model.put("byte_fallback", true);
        model.put("ignore_merges", false);
        model.set("vocab", vocab);
        ArrayNode mergeList = model.putArray("merges");
        merges.forEach(mergeList::add);
        return root;
    }

    private static final List<String> PIECES = List.of("▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁he", "▁hel",
            "▁hell", "▁hello", "▁w", "▁wo", "▁wor", "▁worl", "▁world");
    private static final List<String> PIECE_MERGES = List.of("▁ h", "▁h e", "▁he l", "▁hel l", "▁hell o", "▁ w",
            "▁w o", "▁wo r", "▁wor l", "▁worl d");

    @Test
    void llama2AndMistralSentencePieceBpeFallsBackToBytes() throws IOException {
        try (Tokenizer tokenizer = write("mistral", sentencePieceBpe(true, PIECES, PIECE_MERGES,
                List.of("[INST]", "[/INST]")), "</s>")) {
            assertArrayEquals(new int[] {id(tokenizer, "▁hello"), id(tokenizer, "▁world")}, tokenizer.encode("hello world"),
                    "the normalizer's ▁ before the first word and for the space");
            int[] accented = tokenizer.encode("hello é");
            // é is not a piece: its UTF-8 bytes C3 A9 are, after ▁.
            assertArrayEquals(new int[] {id(tokenizer, "▁hello"), id(tokenizer, "▁"), id(tokenizer, "<0xC3>"),
                    id(tokenizer, "<0xA9>")}, accented);
            assertEquals("hello é", tokenizer.decode(accented));
            assertEquals(2, tokenizer.eosTokenId().orElseThrow());
            String prompt = "[INST]hello world[/INST]";
            int[] ids = tokenizer.encode(prompt);
            assertEquals(id(tokenizer, "[INST]"), ids[0]);
            assertEquals(id(tokenizer, "[/INST]"), ids[ids.length - 1]);
            assertEquals("naïve 日本 🙂", tokenizer.decode(tokenizer.encode("naïve 日本 🙂")));
        }
    }

    /** Gemma's tokenizer.json: no dummy prefix, spaces as ▁, byte fallback, &lt;start_of_turn&gt;/&lt;end_of_turn&gt; added. */
    @Test
    void gemmaSentencePieceBpeWithoutDummyPrefixAndTurnTokens() throws IOException {
        try (Tokenizer tokenizer = write("gemma", sentencePieceBpe(false, PIECES, PIECE_MERGES,
                List.of("<start_of_turn>", "<end_of_turn>")), "<end_of_turn>")) {
            assertArrayEquals(new int[] {id(tokenizer, "h"), id(tokenizer, "e"), id(tokenizer, "l"), id(tokenizer, "l"),
                    id(tokenizer, "o"), id(tokenizer, "▁world")}, tokenizer.encode("hello world"),
                    "no ▁ before the first word, so it stays in letters");
            String turn = "<start_of_turn>user\nhello world<end_of_turn>\n";
            int[] ids = tokenizer.encode(turn);
            assertEquals(id(tokenizer, "<start_of_turn>"), ids[0]);
            assertTrue(contains(ids, id(tokenizer, "<end_of_turn>")));
            assertEquals(turn, tokenizer.decode(ids));
            assertEquals(id(tokenizer, "<end_of_turn>"), tokenizer.eosTokenId().orElseThrow());
        }
    }

    private static boolean contains(int[] ids, int id) {
        for (int value : ids) {
            if (value == id) {
                return true;
            }
        }
        return false;
    }

    @Test
    void theWrittenTokenizerJsonIsUtf8() throws IOException {
        ByteLevelTokenizerJson.write(dir, 8, 600);
        String text = Files.readString(dir.resolve(Tokenizer.FILE_NAME), StandardCharsets.UTF_8);
        Map<?, ?> parsed = JSON.readValue(text, Map.class);
        assertEquals(600 - ByteLevelTokenizerJson.VOCAB_SIZE, ((List<?>) ((Map<?, ?>) parsed.get("model")).get("merges")).size());
    }
}
