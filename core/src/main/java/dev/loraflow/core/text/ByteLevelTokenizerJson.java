package dev.loraflow.core.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.PythonJson;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A tokenizer that encodes any text, for models generated without a download: GPT-2's byte-level BPE,
 * every UTF-8 byte one token whose id is the byte's value, {@value #END_OF_TEXT} as id 256, and — for
 * a larger vocabulary — merges that fill every further id, so that each id of the model decodes to
 * text and that text encodes again (to ids that decode to the same text). The merged tokens are
 * strings of lowercase ASCII letters, in order of length: "aa", "ab", …, "zz", "aaa", …, each the merge
 * of its first letters' token and its last letter, which caps the vocabulary at
 * {@link #MAX_VOCAB_SIZE}; beyond it no tokenizer is written.
 */
public final class ByteLevelTokenizerJson {

    public static final String END_OF_TEXT = "<|endoftext|>";
    public static final int END_OF_TEXT_ID = 256;
    /** The 256 byte tokens and the end-of-text token: the vocabulary without merges. */
    public static final int VOCAB_SIZE = END_OF_TEXT_ID + 1;
    /** The largest vocabulary the letter merges fill: words of 2 to 4 letters, 26² + 26³ + 26⁴ of them. */
    public static final int MAX_VOCAB_SIZE = VOCAB_SIZE + 26 * 26 + 26 * 26 * 26 + 26 * 26 * 26 * 26;

    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * GPT-2's {@code bytes_to_unicode}: the printable Latin-1 bytes stand for themselves, the other 68
     * take the code points from 256 up, in byte order, so that no token is whitespace or a control
     * character.
     */
    private static final String[] BYTE_TOKENS = new String[256];

    static {
        int nextSubstitute = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_TOKENS[b] = String.valueOf((char) (printable ? b : nextSubstitute++));
        }
    }

    private ByteLevelTokenizerJson() {}

    /** The vocabulary entry of byte {@code b}, 0..255. */
    static String byteToken(int b) {
        return BYTE_TOKENS[b];
    }

    /** Whether {@link #tokenizerJson(int)} can fill a vocabulary of this size. */
    public static boolean fits(int vocabSize) {
        return vocabSize >= VOCAB_SIZE && vocabSize <= MAX_VOCAB_SIZE;
    }

    /** The tokenizer.json text of the 257-token vocabulary, laid out as the tokenizers library saves it. */
    public static String tokenizerJson() {
        return tokenizerJson(VOCAB_SIZE);
    }

    /**
     * The tokenizer.json text of a vocabulary of {@code vocabSize} ids: bytes, end of text, then merges.
     *
     * @throws IllegalArgumentException unless {@link #fits}(vocabSize)
     */
    public static String tokenizerJson(int vocabSize) {
        if (!fits(vocabSize)) {
            throw new IllegalArgumentException("a byte-level tokenizer with letter merges has " + VOCAB_SIZE + " to "
                    + MAX_VOCAB_SIZE + " tokens, not " + vocabSize);
        }
        var json = JsonNodeFactory.instance;
        ObjectNode root = json.objectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        root.putArray("added_tokens").addObject()
                .put("id", END_OF_TEXT_ID)
                .put("content", END_OF_TEXT)
                .put("single_word", false)
                .put("lstrip", false)
                .put("rstrip", false)
                .put("normalized", false)
                .put("special", true);
        root.putNull("normalizer");
        root.set("pre_tokenizer", byteLevel(false, true));
        root.set("post_processor", byteLevel(true, false));
        root.set("decoder", byteLevel(true, true));
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        ObjectNode vocab = model.putObject("vocab");
        for (int b = 0; b < 256; b++) {
            vocab.put(byteToken(b), b);
        }
        // In the model's vocabulary too, as in GPT-2's: the tokenizers library re-numbers an added token
        // whose id falls inside the model's vocabulary but is not one of its entries.
        vocab.put(END_OF_TEXT, END_OF_TEXT_ID);
        ArrayNode merges = model.putArray("merges");
        List<String> words = new ArrayList<>();
        for (char letter = 'a'; letter <= 'z'; letter++) {
            words.add(String.valueOf(letter));
        }
        // Breadth first: every word of the list, in order, grows by each letter, so shorter words come first.
        for (int prefix = 0, id = VOCAB_SIZE; id < vocabSize; prefix++) {
            String word = words.get(prefix);
            for (char letter = 'a'; letter <= 'z' && id < vocabSize; letter++, id++) {
                String merged = word + letter;
                words.add(merged);
                vocab.put(merged, id);
                merges.add(word + " " + letter);
            }
        }
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static ObjectNode byteLevel(boolean addPrefixSpace, boolean trimOffsets) {
        ObjectNode node = JsonNodeFactory.instance.objectNode();
        node.put("type", "ByteLevel");
        node.put("add_prefix_space", addPrefixSpace);
        node.put("trim_offsets", trimOffsets);
        node.put("use_regex", true);
        return node;
    }

    /**
     * The tokenizer_config.json Transformers' {@code AutoTokenizer} needs to load tokenizer.json as a
     * fast tokenizer, naming {@value #END_OF_TEXT} as BOS, EOS and UNK as GPT-2 does.
     */
    public static String tokenizerConfigJson(int modelMaxLength) {
        if (modelMaxLength <= 0) {
            throw new IllegalArgumentException("modelMaxLength must be positive, found " + modelMaxLength);
        }
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        root.put("tokenizer_class", "PreTrainedTokenizerFast");
        root.put("bos_token", END_OF_TEXT);
        root.put("eos_token", END_OF_TEXT);
        root.put("unk_token", END_OF_TEXT);
        root.put("add_prefix_space", false);
        // Cleaning up would turn "a ." into "a." on decode and break the byte round trip.
        root.put("clean_up_tokenization_spaces", false);
        root.put("model_max_length", modelMaxLength);
        return PythonJson.dumps(root) + "\n";
    }

    /** Atomically writes {@value Tokenizer#FILE_NAME} and {@value Tokenizer#CONFIG_FILE_NAME} into {@code directory}. */
    public static void write(Path directory, int modelMaxLength) throws IOException {
        write(directory, modelMaxLength, VOCAB_SIZE);
    }

    /** {@link #write(Path, int)} with merges filling a vocabulary of {@code vocabSize} ids; see {@link #fits}. */
    public static void write(Path directory, int modelMaxLength, int vocabSize) throws IOException {
        String config = tokenizerConfigJson(modelMaxLength);
        String tokenizer = tokenizerJson(vocabSize);
        Files.createDirectories(directory);
        AtomicFiles.write(directory.resolve(Tokenizer.FILE_NAME), tokenizer.getBytes(StandardCharsets.UTF_8));
        AtomicFiles.write(directory.resolve(Tokenizer.CONFIG_FILE_NAME), config.getBytes(StandardCharsets.UTF_8));
    }
}
