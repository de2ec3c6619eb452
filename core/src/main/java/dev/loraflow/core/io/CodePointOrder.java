package dev.loraflow.core.io;

import java.util.Comparator;

/**
 * Orders strings by Unicode code point, as Rust's {@code str} and Python's {@code str} compare.
 * {@link String#compareTo} compares UTF-16 units instead, which disagrees for characters above
 * U+FFFF against those in U+E000..U+FFFF; files other tools write sort the Rust/Python way.
 */
public final class CodePointOrder implements Comparator<String> {

    public static final CodePointOrder INSTANCE = new CodePointOrder();

    private CodePointOrder() {}

    @Override
    public int compare(String left, String right) {
        int i = 0;
        int j = 0;
        while (i < left.length() && j < right.length()) {
            int a = left.codePointAt(i);
            int b = right.codePointAt(j);
            if (a != b) {
                return Integer.compare(a, b);
            }
            i += Character.charCount(a);
            j += Character.charCount(b);
        }
        return Integer.compare(left.length() - i, right.length() - j);
    }
}
