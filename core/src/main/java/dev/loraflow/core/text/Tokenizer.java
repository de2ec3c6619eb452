package dev.loraflow.core.text;

import ai.djl.engine.EngineException;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A Hugging Face {@code tokenizer.json}, run by the Rust {@code tokenizers} library through DJL's
 * binding, so every model family's pre-tokenizer, normaliser and BPE/Unigram/WordPiece model behaves
 * exactly as in Transformers. Encoding adds no special tokens and never truncates or pads.
 *
 * <p>DJL extracts its native library from its jar into {@code ~/.djl.ai/tokenizers/} on first use
 * ({@code DJL_CACHE_DIR} or {@code ENGINE_CACHE_DIR}, as environment variable or system property,
 * move it); nothing is downloaded. Thread-safe; {@link #close} frees the native tokenizer.
 */
public final class Tokenizer implements AutoCloseable {

    public static final String FILE_NAME = "tokenizer.json";
    /** Transformers' tokenizer settings file, next to tokenizer.json; it names the end-of-text token. */
    public static final String CONFIG_FILE_NAME = "tokenizer_config.json";

    static {
        // Unless offline, DJL looks up EC2 instance metadata and sends a telemetry request each time a
        // tokenizer is created; loraflow only loads local files, and must not stall where the network is
        // closed. An explicit DJL_OFFLINE or ai.djl.offline wins.
        if (System.getenv("DJL_OFFLINE") == null && System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
    }

    // tokenizer.json files of the Hub repeat no keys; two equal keys mean a damaged file.
    private static final ObjectMapper JSON = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build());

    private static final Map<String, String> ENCODE_AS_IS = Map.of(
            "addSpecialTokens", "false",
            "truncation", "false",
            "padding", "false");

    private final HuggingFaceTokenizer tokenizer;
    private final Map<String, Integer> tokenIds;
    private final int vocabSize;
    private final OptionalInt eosTokenId;
    private final Path source;

    private Tokenizer(HuggingFaceTokenizer tokenizer, Map<String, Integer> tokenIds, OptionalInt eosTokenId, Path source) {
        this.tokenizer = tokenizer;
        this.tokenIds = Collections.unmodifiableMap(tokenIds);
        this.vocabSize = tokenIds.values().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        this.eosTokenId = eosTokenId;
        this.source = source;
    }

    /**
     * Loads {@code tokenizerJson}; the end-of-text token comes from {@value #CONFIG_FILE_NAME}'s
     * {@code eos_token} in the same directory, when that file exists.
     *
     * @throws TokenizerFormatException naming the file when it is missing, not JSON, has no usable
     *     vocabulary, or the tokenizers library rejects it
     */
    public static Tokenizer load(Path tokenizerJson) throws IOException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(tokenizerJson);
        } catch (NoSuchFileException e) {
            throw new TokenizerFormatException(tokenizerJson + ": no such file", e);
        }
        JsonNode root = readJson(bytes, tokenizerJson);
        Map<String, Integer> tokenIds = tokenIds(root, tokenizerJson);
        OptionalInt eos = eosTokenId(tokenizerJson.resolveSibling(CONFIG_FILE_NAME), tokenIds);
        HuggingFaceTokenizer tokenizer;
        try {
            tokenizer = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(bytes), ENCODE_AS_IS);
        } catch (EngineException nativeLibraryMissing) {
            throw nativeLibraryMissing;
        } catch (RuntimeException rejected) {
            throw new TokenizerFormatException(tokenizerJson + ": the tokenizers library rejects it: "
                    + rejected.getMessage(), rejected);
        }
        return new Tokenizer(tokenizer, tokenIds, eos, tokenizerJson);
    }

    private static JsonNode readJson(byte[] bytes, Path file) throws TokenizerFormatException {
        JsonNode root;
        try {
            root = JSON.readTree(bytes);
        } catch (JacksonException e) {
            throw new TokenizerFormatException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new TokenizerFormatException(file + ": unreadable: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new TokenizerFormatException(file + ": must hold a JSON object");
        }
        return root;
    }

    /** The model's vocabulary plus the added tokens; BPE, WordPiece and WordLevel map token → id, Unigram lists [token, score] by id. */
    private static Map<String, Integer> tokenIds(JsonNode root, Path file) throws TokenizerFormatException {
        JsonNode vocab = root.path("model").path("vocab");
        Map<String, Integer> ids = new HashMap<>();
        if (vocab.isObject()) {
            for (var entry : vocab.properties()) {
                JsonNode id = entry.getValue();
                if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0) {
                    throw new TokenizerFormatException(file + ": model.vocab[\"" + entry.getKey()
                            + "\"] must be a non-negative integer id, found " + id);
                }
                ids.put(entry.getKey(), id.intValue());
            }
        } else if (vocab.isArray()) {
            for (int id = 0; id < vocab.size(); id++) {
                JsonNode piece = vocab.get(id).path(0);
                if (!piece.isTextual()) {
                    throw new TokenizerFormatException(file + ": model.vocab[" + id + "] must be [token, score], found "
                            + vocab.get(id));
                }
                ids.put(piece.textValue(), id);
            }
        } else {
            throw new TokenizerFormatException(file + ": has no model.vocab object or array");
        }
        JsonNode added = root.path("added_tokens");
        if (!added.isMissingNode() && !added.isNull() && !added.isArray()) {
            throw new TokenizerFormatException(file + ": added_tokens must be an array, found " + added.getNodeType());
        }
        for (JsonNode token : added) {
            JsonNode id = token.path("id");
            JsonNode content = token.path("content");
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || !content.isTextual()) {
                throw new TokenizerFormatException(file + ": added token " + token
                        + " needs a non-negative integer 'id' and a string 'content'");
            }
            ids.put(content.textValue(), id.intValue());
        }
        if (ids.isEmpty()) {
            throw new TokenizerFormatException(file + ": the vocabulary is empty");
        }
        return ids;
    }

    /** Transformers writes {@code eos_token} as the token's text or as an AddedToken object with a {@code content}. */
    private static OptionalInt eosTokenId(Path config, Map<String, Integer> tokenIds) throws IOException {
        if (!Files.isRegularFile(config)) {
            return OptionalInt.empty();
        }
        JsonNode eos = readJson(Files.readAllBytes(config), config).path("eos_token");
        if (eos.isObject()) {
            eos = eos.path("content");
        }
        if (eos.isMissingNode() || eos.isNull()) {
            return OptionalInt.empty();
        }
        if (!eos.isTextual()) {
            throw new TokenizerFormatException(config + ": eos_token must be a string or an object with a string "
                    + "'content', found " + eos);
        }
        Integer id = tokenIds.get(eos.textValue());
        if (id == null) {
            throw new TokenizerFormatException(config + ": eos_token \"" + eos.textValue()
                    + "\" is not in the vocabulary of " + FILE_NAME);
        }
        return OptionalInt.of(id);
    }

    /** The ids of {@code text}, without special tokens (no BOS/EOS), however long. */
    public int[] encode(String text) {
        Objects.requireNonNull(text, "text");
        long[] ids = tokenizer.encode(text, false, false).getIds();
        int[] result = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            result[i] = Math.toIntExact(ids[i]);
        }
        return result;
    }

    /**
     * The text of {@code ids}, special tokens included as their text.
     *
     * @throws IllegalArgumentException naming the first id outside [0, vocabSize)
     */
    public String decode(int[] ids) {
        long[] wide = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new IllegalArgumentException("token id " + ids[i] + " at index " + i
                        + " is outside the vocabulary [0, " + vocabSize + ") of " + source);
            }
            wide[i] = ids[i];
        }
        return tokenizer.decode(wide, false);
    }

    /** The id of a vocabulary entry or added token, given as the tokenizer stores it (byte-level BPE spells a space 'Ġ'). */
    public OptionalInt tokenId(String token) {
        Integer id = tokenIds.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** The end-of-text token {@value #CONFIG_FILE_NAME} names, if any. */
    public OptionalInt eosTokenId() {
        return eosTokenId;
    }

    /** One more than the largest id, added tokens included: the embedding rows a model needs. */
    public int vocabSize() {
        return vocabSize;
    }

    /** The tokenizer.json this was loaded from. */
    public Path source() {
        return source;
    }

    /** Frees the native tokenizer; closing it again does nothing. */
    @Override
    public void close() {
        tokenizer.close();
    }
}
