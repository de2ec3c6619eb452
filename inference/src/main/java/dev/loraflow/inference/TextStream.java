package dev.loraflow.inference;

import dev.loraflow.core.text.Tokenizer;
import java.util.Arrays;
import java.util.List;

/**
 * Turns generated ids into text as they come, for streaming, and finds the stop sequences in it.
 *
 * <p>Each step decodes every generated id again (a token may complete a character begun by the one
 * before), and holds back what may still change: a trailing U+FFFD (an incomplete UTF-8 character) and
 * any tail that begins a stop sequence. Once a stop sequence appears, the text ends just before it.
 */
final class TextStream {

    private static final char REPLACEMENT = '\uFFFD';

    private final Tokenizer tokenizer;
    private final List<String> stops;
    private int[] ids = new int[16];
    private int count;
    private int emitted;
    private String text = "";
    private boolean stopped;

    TextStream(Tokenizer tokenizer, List<String> stops) {
        this.tokenizer = tokenizer;
        this.stops = stops;
    }

    /**
     * Adds a token; the text that became certain, possibly empty. After a stop sequence appeared,
     * {@link #stopped()} is true and the text ends before it.
     */
    String add(int token) {
        if (count == ids.length) {
            ids = Arrays.copyOf(ids, 2 * count);
        }
        ids[count++] = token;
        String decoded = tokenizer.decode(Arrays.copyOf(ids, count));
        int certain = decoded.length();
        while (certain > emitted && decoded.charAt(certain - 1) == REPLACEMENT) {
            certain--;
        }
        int stopAt = firstStop(decoded);
        if (stopAt >= 0) {
            stopped = true;
            text = decoded.substring(0, stopAt);
            return delta(stopAt);
        }
        text = decoded;
        return delta(Math.max(emitted, certain - longestStopPrefixAtEnd(decoded.substring(0, certain))));
    }

    /** At the end: everything not yet emitted (a held-back tail that turned out not to be a stop). */
    String flush() {
        return delta(text.length());
    }

    boolean stopped() {
        return stopped;
    }

    /** The whole text so far, a stop sequence and what follows it cut off. */
    String text() {
        return text;
    }

    private String delta(int upTo) {
        if (upTo <= emitted) {
            return "";
        }
        String delta = text.substring(emitted, upTo);
        emitted = upTo;
        return delta;
    }

    private int firstStop(String decoded) {
        int first = -1;
        for (String stop : stops) {
            // Text already emitted holds no stop, so the search starts where a new one could begin.
            int index = decoded.indexOf(stop, Math.max(0, emitted - stop.length() + 1));
            if (index >= 0 && (first < 0 || index < first)) {
                first = index;
            }
        }
        return first;
    }

    private int longestStopPrefixAtEnd(String decoded) {
        int longest = 0;
        for (String stop : stops) {
            for (int length = Math.min(stop.length() - 1, decoded.length()); length > longest; length--) {
                if (decoded.endsWith(stop.substring(0, length))) {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
