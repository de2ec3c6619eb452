package dev.loraflow.core.io;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Renders JSON exactly as Python's {@code json.dumps(obj, indent=2, sort_keys=True)} does, which
 * is how PEFT writes {@code adapter_config.json} and transformers writes shard indexes. Matching it
 * byte for byte keeps files we write diff-clean against files the Python stack writes.
 */
public final class PythonJson {

    private PythonJson() {}

    /** The text of {@code node}, without a trailing newline (json.dumps adds none). */
    public static String dumps(JsonNode node) {
        var out = new StringBuilder();
        write(node, 0, out);
        return out.toString();
    }

    private static void write(JsonNode node, int depth, StringBuilder out) {
        switch (node.getNodeType()) {
            case OBJECT -> writeObject(node, depth, out);
            case ARRAY -> writeArray(node, depth, out);
            case STRING -> writeString(node.textValue(), out);
            case BOOLEAN -> out.append(node.booleanValue() ? "true" : "false");
            case NULL, MISSING -> out.append("null");
            case NUMBER -> out.append(node.isIntegralNumber() ? node.bigIntegerValue().toString() : floatRepr(node.doubleValue()));
            case BINARY, POJO -> throw new IllegalArgumentException("not plain JSON: " + node.getNodeType());
        }
    }

    private static void writeObject(JsonNode node, int depth, StringBuilder out) {
        List<Map.Entry<String, JsonNode>> entries = new ArrayList<>(node.properties());
        if (entries.isEmpty()) {
            out.append("{}");
            return;
        }
        // Python sorts keys as str, by code point.
        entries.sort(Map.Entry.comparingByKey(CodePointOrder.INSTANCE));
        out.append('{');
        for (int i = 0; i < entries.size(); i++) {
            out.append(i == 0 ? "" : ",");
            newline(depth + 1, out);
            writeString(entries.get(i).getKey(), out);
            out.append(": ");
            write(entries.get(i).getValue(), depth + 1, out);
        }
        newline(depth, out);
        out.append('}');
    }

    private static void writeArray(JsonNode node, int depth, StringBuilder out) {
        if (node.isEmpty()) {
            out.append("[]");
            return;
        }
        out.append('[');
        for (int i = 0; i < node.size(); i++) {
            out.append(i == 0 ? "" : ",");
            newline(depth + 1, out);
            write(node.get(i), depth + 1, out);
        }
        newline(depth, out);
        out.append(']');
    }

    private static void newline(int depth, StringBuilder out) {
        out.append('\n').repeat(' ', 2 * depth);
    }

    /** ensure_ascii=True: everything outside printable ASCII is a lowercase \\uXXXX escape. */
    private static void writeString(String text, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        out.append("\\u").append(String.format("%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /**
     * Python's {@code repr(float)}: the shortest digits that read back to the same double, laid out
     * positionally when the decimal exponent is in [-4, 16) and as {@code 1.5e-05} otherwise.
     */
    public static String floatRepr(double value) {
        if (Double.isNaN(value)) {
            return "NaN";
        }
        if (Double.isInfinite(value)) {
            return value > 0 ? "Infinity" : "-Infinity";
        }
        String sign = (Double.doubleToRawLongBits(value) < 0) ? "-" : "";
        if (value == 0) {
            return sign + "0.0";
        }
        BigDecimal shortest = shortestDecimal(Math.abs(value));
        String digits = shortest.unscaledValue().toString();
        // value = 0.DIGITS x 10^pointPosition
        int pointPosition = digits.length() - shortest.scale();
        if (pointPosition <= -4 || pointPosition > 16) {
            int exponent = pointPosition - 1;
            String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
            String exponentDigits = String.format("%02d", Math.abs(exponent));
            return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + exponentDigits;
        }
        if (pointPosition <= 0) {
            return sign + "0." + "0".repeat(-pointPosition) + digits;
        }
        if (pointPosition >= digits.length()) {
            return sign + digits + "0".repeat(pointPosition - digits.length()) + ".0";
        }
        return sign + digits.substring(0, pointPosition) + "." + digits.substring(pointPosition);
    }

    /**
     * Double.toString (JDK 19+) gives the shortest round-tripping digits, except that where one digit
     * would do it may prefer a closer two-digit decimal (4.9E-324 where Python prints 5e-324).
     */
    private static BigDecimal shortestDecimal(double positive) {
        BigDecimal javaDigits = new BigDecimal(Double.toString(positive)).stripTrailingZeros();
        if (javaDigits.precision() != 2) {
            return javaDigits;
        }
        BigDecimal exact = new BigDecimal(positive);
        BigDecimal best = javaDigits;
        for (RoundingMode mode : new RoundingMode[] {RoundingMode.FLOOR, RoundingMode.CEILING}) {
            BigDecimal oneDigit = javaDigits.round(new MathContext(1, mode)).stripTrailingZeros();
            boolean roundTrips = oneDigit.signum() > 0 && oneDigit.doubleValue() == positive;
            if (roundTrips && (best.precision() > 1
                    || oneDigit.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0)) {
                best = oneDigit;
            }
        }
        return best;
    }
}
