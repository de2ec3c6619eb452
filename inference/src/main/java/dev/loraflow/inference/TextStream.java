package dev.loraflow.inference;

import dev.loraflow.core.text.Tokenizer;
import java.util.Arrays;
import java.util.List;

/**
 * Turns generated ids into text as they come, for streaming, and finds the stop sequences in it, at a
 * cost per token that does not grow with the text so far (it runs on the engine's thread, once per
 * token of every sequence).
 *
 * <p>Decoding is incremental, as Transformers' and vLLM's streaming detokenizers do it: each step decodes
 * only the ids since the text last became certain, with the ids of that last piece before them for
 * context (a SentencePiece word's leading space depends on what precedes it), and takes what the longer
 * window adds. While the new text ends in U+FFFD (a character whose bytes are not all there yet) it is held
 * back, at most {@value #MAX_HELD_IDS} ids: beyond that the bytes are not a character, and the
 * replacement character is the text.
 *
 * <p>Stop sequences are searched only in the new text and the held-back tail before it, which is shorter
 * than the longest stop: what was emitted holds no stop. Once a stop sequence appears, the text ends just
 * before it.
 */
final class TextStream {

    /** Ids held back for an unfinished character: UTF-8 characters have at most four bytes. */
    static final int MAX_HELD_IDS = 4;
    private static final char REPLACEMENT = '\uFFFD';

    private final Tokenizer tokenizer;
    private final List<String> stops;
    private int[] ids = new int[16];
    private int count;
    /** ids[prefixOffset, readOffset) decoded to the last piece of certain text; ids[readOffset, count) are not yet text. */
    private int prefixOffset;
    private int readOffset;
    /** Certain text, stop-free, given out by {@link #add}. */
    private final StringBuilder emitted = new StringBuilder();
    /** Certain text not given out yet: it may begin a stop sequence. Shorter than the longest stop. */
    private String tail = "";
    private boolean stopped;
    /** Characters decoded and searched so far: the work done, for tests. */
    private long charsProcessed;

    TextStream(Tokenizer tokenizer, List<String> stops) {
        this.tokenizer = tokenizer;
        this.stops = stops;
    }

    /**
     * Adds a token; the text that became certain, possibly empty. After a stop sequence appeared,
     * {@link #stopped()} is true and the text ends before it.
     */
    String add(int token) {
        if (stopped) {
            return "";
        }
        if (count == ids.length) {
            ids = Arrays.copyOf(ids, 2 * count);
        }
        ids[count++] = token;
        String piece = newText(false);
        return piece.isEmpty() ? "" : search(piece);
    }

    boolean stopped() {
        return stopped;
    }

    /** The whole text so far, a stop sequence and what follows it cut off; held-back ids decoded as they are. */
    String text() {
        if (stopped) {
            return emitted.toString();
        }
        return emitted + tail + newText(true);
    }

    /** Characters decoded and searched so far: stays proportional to the tokens, whatever the text's length. */
    long charsProcessed() {
        return charsProcessed;
    }

    /**
     * The text the ids since {@link #readOffset} add, or "" while they end in an unfinished character
     * (unless {@code force}, or more than {@value #MAX_HELD_IDS} ids are held); advances the offsets when
     * it gives text, unless {@code force} (a look at the end that changes nothing).
     */
    private String newText(boolean force) {
        if (count == readOffset) {
            return "";
        }
        String before = prefixOffset == readOffset ? "" : tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset));
        String window = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, count));
        charsProcessed += before.length() + window.length();
        boolean unfinished = !window.isEmpty() && window.charAt(window.length() - 1) == REPLACEMENT;
        if (window.length() <= before.length() || (unfinished && !force && count - readOffset <= MAX_HELD_IDS)) {
            return "";
        }
        if (!force) {
            prefixOffset = readOffset;
            readOffset = count;
        }
        return window.substring(before.length());
    }

    /** Looks for a stop in the held tail and {@code piece}; the text now certain and free of stops. */
    private String search(String piece) {
        String text = tail + piece;
        charsProcessed += (long) text.length() * Math.max(1, stops.size());
        int stopAt = -1;
        for (String stop : stops) {
            int index = text.indexOf(stop);
            if (index >= 0 && (stopAt < 0 || index < stopAt)) {
                stopAt = index;
            }
        }
        if (stopAt >= 0) {
            stopped = true;
            tail = "";
            String delta = text.substring(0, stopAt);
            emitted.append(delta);
            return delta;
        }
        int keep = longestStopPrefixAtEnd(text);
        tail = text.substring(text.length() - keep);
        String delta = text.substring(0, text.length() - keep);
        emitted.append(delta);
        return delta;
    }

    /** The length of the longest end of {@code text} that begins some stop sequence (shorter than it). */
    private int longestStopPrefixAtEnd(String text) {
        int longest = 0;
        for (String stop : stops) {
            for (int length = Math.min(stop.length() - 1, text.length()); length > longest; length--) {
                charsProcessed += length;
                if (text.regionMatches(text.length() - length, stop, 0, length)) {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
