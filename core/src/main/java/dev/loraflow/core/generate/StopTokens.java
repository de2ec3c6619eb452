package dev.loraflow.core.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The tokens that end a generation, as Transformers decides them for a model directory: the
 * {@code eos_token_id} of {@code generation_config.json} when it names one, else that of
 * {@code config.json}, else the tokenizer's end-of-text token. Either may be one id or a list: chat
 * models list their end-of-turn token (Llama 3's {@code <|eot_id|>}, ChatML's {@code <|im_end|>}) beside
 * the end-of-text one, and a generation must stop at any of them.
 */
public final class StopTokens {

    public static final String GENERATION_CONFIG_FILE = "generation_config.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private StopTokens() {}

    /**
     * @param tokenizer the directory's tokenizer, or null when it has none
     * @return the ids in the order the file lists them (the first is what padding uses), possibly none
     * @throws IOException when a file exists but is not JSON, or lists something other than ids
     */
    public static List<Integer> of(Path modelDirectory, Tokenizer tokenizer) throws IOException {
        for (String file : List.of(GENERATION_CONFIG_FILE, "config.json")) {
            Path path = modelDirectory.resolve(file);
            if (Files.isRegularFile(path)) {
                List<Integer> ids = eosTokenIds(path);
                if (!ids.isEmpty()) {
                    return ids;
                }
            }
        }
        return tokenizer == null || tokenizer.eosTokenId().isEmpty() ? List.of() : List.of(tokenizer.eosTokenId().getAsInt());
    }

    private static List<Integer> eosTokenIds(Path file) throws IOException {
        JsonNode eos;
        try {
            eos = JSON.readTree(file.toFile()).path("eos_token_id");
        } catch (IOException e) {
            throw new IOException(file + ": not JSON: " + e.getMessage(), e);
        }
        List<Integer> ids = new ArrayList<>();
        for (JsonNode id : eos.isArray() ? eos : List.of(eos)) {
            if (id.isNull() || id.isMissingNode()) {
                continue;
            }
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0) {
                throw new IOException(file + ": eos_token_id must be a token id or a list of them, got " + eos);
            }
            if (!ids.contains(id.intValue())) {
                ids.add(id.intValue());
            }
        }
        return ids;
    }
}
