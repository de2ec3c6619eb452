package dev.loraflow.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Incremental decoding and stop sequences on the real byte-level tokenizer (one id per UTF-8 byte). */
class TextStreamTest {

    @TempDir
    static Path dir;
    static Tokenizer tokenizer;

    @BeforeAll
    static void loadTokenizer() throws IOException {
        ByteLevelTokenizerJson.write(dir, 64);
        tokenizer = Tokenizer.load(dir.resolve(Tokenizer.FILE_NAME));
    }

    @AfterAll
    static void closeTokenizer() {
        tokenizer.close();
    }

    private static int[] ids(String text) {
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            ids[i] = utf8[i] & 0xff;
        }
        return ids;
    }

    /** Feeds the text's ids; what add() gave, piece by piece joined. */
    private static String stream(TextStream stream, String text) {
        StringBuilder given = new StringBuilder();
        for (int id : ids(text)) {
            given.append(stream.add(id));
        }
        return given.toString();
    }

    @Test
    void multiByteCharactersComeWholeAndTheTextIsTheWholeDecode() {
        String text = "héllo wörld — ✓ 𝄞 done";
        TextStream stream = new TextStream(tokenizer, List.of());
        StringBuilder given = new StringBuilder();
        for (int id : ids(text)) {
            String piece = stream.add(id);
            assertFalse(piece.contains("\uFFFD"), "a piece holds half a character: " + piece);
            given.append(piece);
        }
        assertEquals(text, given.toString());
        assertEquals(text, stream.text());
    }

    @Test
    void anUnfinishedCharacterIsHeldThenGivenAsTheDecoderGivesIt() {
        TextStream stream = new TextStream(tokenizer, List.of());
        assertEquals("a", stream.add('a'));
        assertEquals("", stream.add(0xe2), "the first byte of a three-byte character");
        assertEquals("a\uFFFD", stream.text(), "at the end, held bytes are what the tokenizer decodes them to");
        // Bytes that never make a character are given out as U+FFFD once more than MAX_HELD_IDS are held.
        for (int i = 0; i < TextStream.MAX_HELD_IDS - 1; i++) {
            assertEquals("", stream.add(0xff));
        }
        assertTrue(stream.add(0xff).contains("\uFFFD"));
        assertEquals("b", stream.add('b'));
    }

    @Test
    void aStopSequenceAcrossPiecesEndsTheTextBeforeIt() {
        TextStream stream = new TextStream(tokenizer, List.of("never", "<END>"));
        String given = stream(stream, "one two <EN three <END> after");
        assertTrue(stream.stopped());
        assertEquals("one two <EN three ", stream.text());
        assertEquals("one two <EN three ", given);
        assertEquals("", stream.add('x'), "nothing after the stop");
    }

    @Test
    void aHeldTailThatIsNoStopComesOutWithTheText() {
        TextStream stream = new TextStream(tokenizer, List.of("</s>"));
        assertEquals("a", stream(stream, "a</"));
        assertEquals("a</", stream.text(), "a tail held as a possible stop is part of the text at the end");
        assertEquals("</b", stream(stream, "b"));
        assertFalse(stream.stopped());
    }

    /**
     * The work per token (characters decoded and searched) is the same at the 20,000th token as at the
     * first thousand, with the longest stop sequences allowed: no token re-reads the text before it.
     */
    @Test
    void theCostPerTokenDoesNotGrowWithTheText() {
        String longStop = "x".repeat(GenerationRequest.MAX_STOP_CHARS - 1) + "!";
        List<String> stops = List.of(longStop, "y".repeat(GenerationRequest.MAX_STOP_CHARS), "zz", "never");
        TextStream stream = new TextStream(tokenizer, stops);
        int tokens = 20_000;
        long[] workAt = new long[tokens + 1];
        for (int i = 0; i < tokens; i++) {
            // Mostly x's: the tail that may begin the long stop stays as long as it can be.
            stream.add(i % 200 == 199 ? 'a' : 'x');
            workAt[i + 1] = stream.charsProcessed();
        }
        assertFalse(stream.stopped());
        long first = workAt[1000] - workAt[0];
        long last = workAt[tokens] - workAt[tokens - 1000];
        assertTrue(last <= first * 1.1 + 1000, "work for the first 1000 tokens " + first + ", for the last " + last);
        long perToken = workAt[tokens] / tokens;
        // A tail shorter than the longest stop, searched by every stop, plus a window of two ids decoded.
        long bound = (long) stops.size() * GenerationRequest.MAX_STOP_CHARS * GenerationRequest.MAX_STOP_CHARS;
        assertTrue(perToken < bound, perToken + " characters per token");
        assertEquals("x".repeat(199) + "a", stream.text().substring(0, 200));
    }

    @Test
    void stopSequencesAreBoundedInNumberAndLength() {
        SamplingSettings greedy = SamplingSettings.greedy(4, Set.of());
        int[] prompt = {1};
        IllegalArgumentException tooLong = assertThrows(IllegalArgumentException.class, () -> new GenerationRequest(prompt,
                greedy, List.of("s".repeat(GenerationRequest.MAX_STOP_CHARS + 1)), null));
        assertTrue(tooLong.getMessage().contains("at most " + GenerationRequest.MAX_STOP_CHARS + " characters"));
        assertThrows(IllegalArgumentException.class, () -> new GenerationRequest(prompt, greedy,
                List.of("a", "b", "c", "d", "e"), null));
        assertEquals(1, new GenerationRequest(prompt, greedy, List.of("s".repeat(GenerationRequest.MAX_STOP_CHARS)), null)
                .stopSequences().size());
    }
}
