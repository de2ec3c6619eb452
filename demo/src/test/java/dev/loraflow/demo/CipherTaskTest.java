package dev.loraflow.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.data.JsonlExamples;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CipherTaskTest {

    @TempDir
    Path temp;

    @Test
    void theBundledFilesAreWhatTheSeedDraws() throws IOException {
        CipherTask.write(temp);
        for (String file : List.of(CipherTask.TRAINING_FILE, CipherTask.HELD_OUT_FILE)) {
            try (InputStream bundled = CipherTask.class.getResourceAsStream("/demo/" + file)) {
                assertArrayEquals(Files.readAllBytes(temp.resolve(file)), bundled.readAllBytes(), file);
            }
        }
    }

    @Test
    void heldOutWordsAreNeverTrainedOnAndOneKeyEnciphersThemAll() {
        List<CipherTask.Pair> training = CipherTask.bundled(CipherTask.TRAINING_FILE);
        List<CipherTask.Pair> heldOut = CipherTask.bundled(CipherTask.HELD_OUT_FILE);
        assertEquals(CipherTask.TRAINING, training.size());
        assertEquals(CipherTask.HELD_OUT, heldOut.size());
        Set<String> trained = new HashSet<>();
        training.forEach(pair -> trained.add(pair.word()));
        assertEquals(training.size(), trained.size(), "training words are distinct");
        heldOut.forEach(pair -> assertTrue(!trained.contains(pair.word()), pair.word() + " is held out and trained on"));

        Map<Character, Character> key = new HashMap<>();
        for (CipherTask.Pair pair : training) {
            for (int i = 0; i < CipherTask.WORD_LENGTH; i++) {
                Character before = key.put(pair.word().charAt(i), pair.cipher().charAt(i));
                assertTrue(before == null || before == pair.cipher().charAt(i), "one letter, one substitute: " + pair);
            }
        }
        assertEquals(26, key.size(), "the training words use every letter");
        assertEquals(26, new HashSet<>(key.values()).size(), "the key is a permutation");
        for (CipherTask.Pair pair : heldOut) {
            StringBuilder cipher = new StringBuilder();
            pair.word().chars().forEach(c -> cipher.append(key.get((char) c)));
            assertEquals(cipher.toString(), pair.cipher(), "held-out words follow the trained key");
        }
    }

    /** What the driver sends (the base's tokenizer on the text) is what the bundled file holds, and the trainer's reader takes it. */
    @Test
    void theBundledIdsAreTheByteLevelTokenizersAndCoreReadsThem() throws IOException {
        Path tokenizerFile = temp.resolve(Tokenizer.FILE_NAME);
        Files.writeString(tokenizerFile, ByteLevelTokenizerJson.tokenizerJson());
        Path heldOutFile = temp.resolve(CipherTask.HELD_OUT_FILE);
        try (InputStream bundled = CipherTask.class.getResourceAsStream("/demo/" + CipherTask.HELD_OUT_FILE)) {
            Files.write(heldOutFile, bundled.readAllBytes());
        }
        List<Example> read = JsonlExamples.read(heldOutFile, null, ByteLevelTokenizerJson.VOCAB_SIZE);
        List<CipherTask.Pair> pairs = CipherTask.bundled(CipherTask.HELD_OUT_FILE);
        try (Tokenizer tokenizer = Tokenizer.load(tokenizerFile)) {
            for (int i = 0; i < pairs.size(); i++) {
                Example example = Demo.example(pairs.get(i), tokenizer, ByteLevelTokenizerJson.END_OF_TEXT_ID);
                assertEquals(example, read.get(i), pairs.get(i).toString());
                assertEquals(CipherTask.byteLevelExample(pairs.get(i)), example);
            }
        }
    }
}
