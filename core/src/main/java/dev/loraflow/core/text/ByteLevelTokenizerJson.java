package dev.loraflow.core.text;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.AtomicFiles;
import dev.loraflow.core.io.PythonJson;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The smallest tokenizer that encodes any text: GPT-2's byte-level BPE with no merges, so every UTF-8
 * byte is one token whose id is the byte's value, plus {@value #END_OF_TEXT} as id 256. Models
 * generated without a download use it, so text prompts and answers work end to end on them.
 */
public final class ByteLevelTokenizerJson {

    public static final String END_OF_TEXT = "<|endoftext|>";
    public static final int END_OF_TEXT_ID = 256;
    /** The 256 byte tokens and the end-of-text token. */
    public static final int VOCAB_SIZE = END_OF_TEXT_ID + 1;

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

    /** The tokenizer.json text, laid out as the tokenizers library saves it. */
    public static String tokenizerJson() {
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
        model.putArray("merges");
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
        String config = tokenizerConfigJson(modelMaxLength);
        Files.createDirectories(directory);
        AtomicFiles.write(directory.resolve(Tokenizer.FILE_NAME), tokenizerJson().getBytes(StandardCharsets.UTF_8));
        AtomicFiles.write(directory.resolve(Tokenizer.CONFIG_FILE_NAME), config.getBytes(StandardCharsets.UTF_8));
    }
}
