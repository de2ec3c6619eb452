package dev.loraflow.core.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StopTokensTest {

    @TempDir
    Path dir;

    @Test
    void generationConfigOverridesConfigAndListsEveryEndOfTurnToken() throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"llama\", \"eos_token_id\": 128001}");
        assertEquals(List.of(128001), StopTokens.of(dir, null));
        Files.writeString(dir.resolve(StopTokens.GENERATION_CONFIG_FILE),
                "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009, 128001]}");
        assertEquals(List.of(128001, 128008, 128009), StopTokens.of(dir, null));
    }

    @Test
    void aGenerationConfigWithoutEosFallsBackToConfigThenToTheTokenizer() throws IOException {
        Files.writeString(dir.resolve(StopTokens.GENERATION_CONFIG_FILE), "{\"do_sample\": true}");
        Files.writeString(dir.resolve("config.json"), "{\"eos_token_id\": [2, 7]}");
        assertEquals(List.of(2, 7), StopTokens.of(dir, null));

        Files.writeString(dir.resolve("config.json"), "{\"eos_token_id\": null}");
        assertEquals(List.of(), StopTokens.of(dir, null));
        Path tokenizerJson = dir.resolve(Tokenizer.FILE_NAME);
        Files.writeString(tokenizerJson, ByteLevelTokenizerJson.tokenizerJson());
        Files.writeString(dir.resolve(Tokenizer.CONFIG_FILE_NAME), ByteLevelTokenizerJson.tokenizerConfigJson(64));
        try (Tokenizer tokenizer = Tokenizer.load(tokenizerJson)) {
            assertEquals(List.of(ByteLevelTokenizerJson.END_OF_TEXT_ID), StopTokens.of(dir, tokenizer));
        }
    }

    @Test
    void idsThatAreNotTokenIdsAreRefusedNamingTheFile() throws IOException {
        for (String eos : List.of("\"</s>\"", "-1", "[2, \"x\"]", "1.5", "4294967296")) {
            Files.writeString(dir.resolve("config.json"), "{\"eos_token_id\": " + eos + "}");
            IOException e = assertThrows(IOException.class, () -> StopTokens.of(dir, null), eos);
            assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("eos_token_id"), e.getMessage());
        }
        Files.writeString(dir.resolve(StopTokens.GENERATION_CONFIG_FILE), "{\"eos_token_id\": ");
        IOException e = assertThrows(IOException.class, () -> StopTokens.of(dir, null));
        assertTrue(e.getMessage().contains(StopTokens.GENERATION_CONFIG_FILE), e.getMessage());
    }
}
