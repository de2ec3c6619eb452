package dev.loraflow.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The demo's task: a fixed letter-substitution cipher of four-letter words, asked as {@code "enc: abcd = "}
 * and answered with the enciphered word and the end-of-text token. A random base model cannot know the
 * key, so it answers nothing right; a LoRA adapter learns it from the training words and then enciphers
 * held-out words it never saw, which shows it learned the letters' mapping rather than the words.
 *
 * <p>Everything is a function of {@link #SEED}: the key is a Fisher–Yates shuffle of the alphabet by
 * {@code Rng(SEED)}, and the same stream then draws distinct words, the first {@link #HELD_OUT} held
 * out and the next {@link #TRAINING} for training. {@code java -cp loraflow-demo.jar
 * dev.loraflow.demo.CipherTask DIR} writes the two bundled files again, byte for byte.
 */
public final class CipherTask {

    public static final long SEED = 2026;
    public static final int WORD_LENGTH = 4;
    public static final int HELD_OUT = 100;
    public static final int TRAINING = 2000;
    public static final String TRAINING_FILE = "cipher-train.jsonl";
    public static final String HELD_OUT_FILE = "cipher-heldout.jsonl";
    private static final String ALPHABET = "abcdefghijklmnopqrstuvwxyz";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** One word and its cipher, as the bundled files hold them. */
    public record Pair(String word, String cipher) {
        public String prompt() {
            return CipherTask.prompt(word);
        }
    }

    private CipherTask() {}

    public static String prompt(String word) {
        return "enc: " + word + " = ";
    }

    /** The training words, then the held-out ones, drawn again from the seed. */
    static List<List<Pair>> draw() {
        Rng rng = new Rng(SEED);
        char[] key = ALPHABET.toCharArray();
        for (int i = key.length - 1; i > 0; i--) {
            int j = (int) Math.floorMod(rng.nextLong(), i + 1);
            char swap = key[i];
            key[i] = key[j];
            key[j] = swap;
        }
        Set<String> words = new LinkedHashSet<>();
        while (words.size() < HELD_OUT + TRAINING) {
            StringBuilder word = new StringBuilder();
            for (int i = 0; i < WORD_LENGTH; i++) {
                word.append(ALPHABET.charAt((int) Math.floorMod(rng.nextLong(), ALPHABET.length())));
            }
            words.add(word.toString());
        }
        List<Pair> pairs = new ArrayList<>();
        for (String word : words) {
            StringBuilder cipher = new StringBuilder();
            for (char c : word.toCharArray()) {
                cipher.append(key[c - 'a']);
            }
            pairs.add(new Pair(word, cipher.toString()));
        }
        return List.of(pairs.subList(HELD_OUT, pairs.size()), pairs.subList(0, HELD_OUT));
    }

    /**
     * The example in byte-level token ids (each UTF-8 byte its own id, end-of-text 256, as
     * {@code init-model} writes the tokenizer): only the answer and the end-of-text token in the loss.
     */
    static Example byteLevelExample(Pair pair) {
        byte[] prompt = pair.prompt().getBytes(StandardCharsets.UTF_8);
        byte[] answer = pair.cipher().getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[prompt.length + answer.length + 1];
        int[] labels = new int[ids.length];
        Arrays.fill(labels, -100);
        for (int i = 0; i < prompt.length; i++) {
            ids[i] = prompt[i] & 0xff;
        }
        for (int i = 0; i < answer.length; i++) {
            ids[prompt.length + i] = answer[i] & 0xff;
            labels[prompt.length + i] = answer[i] & 0xff;
        }
        ids[ids.length - 1] = ByteLevelTokenizerJson.END_OF_TEXT_ID;
        labels[ids.length - 1] = ByteLevelTokenizerJson.END_OF_TEXT_ID;
        return new Example(ids, labels);
    }

    /** One JSONL line: core's example format (read by {@code ./loraflow train} too) plus the word and its cipher. */
    static String line(Pair pair) {
        Example example = byteLevelExample(pair);
        ObjectNode line = JSON.createObjectNode().put("word", pair.word()).put("cipher", pair.cipher());
        line.putPOJO("input_ids", example.inputIds());
        line.putPOJO("labels", example.labels());
        return line.toString();
    }

    /** The pairs of a bundled file ({@link #TRAINING_FILE} or {@link #HELD_OUT_FILE}). */
    public static List<Pair> bundled(String file) {
        try (InputStream in = CipherTask.class.getResourceAsStream("/demo/" + file)) {
            if (in == null) {
                throw new IllegalStateException("demo/" + file + " is missing from the class path");
            }
            List<Pair> pairs = new ArrayList<>();
            BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            for (String text; (text = reader.readLine()) != null; ) {
                JsonNode line = JSON.readTree(text);
                pairs.add(new Pair(line.get("word").textValue(), line.get("cipher").textValue()));
            }
            return pairs;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void write(Path directory) throws IOException {
        List<List<Pair>> drawn = draw();
        Files.createDirectories(directory);
        Files.write(directory.resolve(TRAINING_FILE), drawn.get(0).stream().map(CipherTask::line).toList());
        Files.write(directory.resolve(HELD_OUT_FILE), drawn.get(1).stream().map(CipherTask::line).toList());
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: CipherTask DIR   (writes " + TRAINING_FILE + " and " + HELD_OUT_FILE + " there)");
            System.exit(2);
        }
        write(Path.of(args[0]));
    }
}
