package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.Sha256;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * A record of the dead-letter topic (schema {@value #SCHEMA}, version {@value #VERSION}): why a batch
 * could not be applied, where it came from, and the original record, so that nothing is lost. The
 * original value is kept as text when it is UTF-8 and no longer so than as base64, otherwise as base64; a
 * value or key above the inline limit (a record refused unread for its size) is named by its length and
 * SHA-256 and stays at its source offset, so a dead letter never outgrows {@link #maxEncodedBytes}.
 */
public final class DeadLetter {

    public static final String SCHEMA = "loraflow.training.dead-letter";
    public static final int VERSION = 1;

    /** Keys longer than this are named, not copied. */
    static final int MAX_INLINE_KEY_BYTES = 4096;
    /** The reason (clipped to this many characters), ids and coordinates. */
    static final int MAX_REASON_CHARS = 16 * 1024;
    private static final int ENVELOPE_BYTES = 64 * 1024;

    private DeadLetter() {}

    /**
     * The most bytes {@link #encode} writes when values up to {@code maxInlineValueBytes} are copied: what the
     * dead-letter topic's {@code max.message.bytes} and its producer's {@code max.request.size} must allow.
     */
    public static int maxEncodedBytes(int maxInlineValueBytes) {
        return Math.toIntExact(base64Length(maxInlineValueBytes) + base64Length(MAX_INLINE_KEY_BYTES)
                + 6L * MAX_REASON_CHARS + ENVELOPE_BYTES);
    }

    /**
     * @param maxInlineValueBytes values up to this many bytes are copied into the dead letter (the consumer's
     *                            record limit); longer ones are named by length and SHA-256
     */
    public static byte[] encode(String reason, String topic, int partition, long offset, byte[] key, byte[] value,
                                String jobId, Long seq, int maxInlineValueBytes) {
        if (reason.length() > MAX_REASON_CHARS) {
            reason = reason.substring(0, MAX_REASON_CHARS) + "…";
        }
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("schema", SCHEMA);
        root.put("version", VERSION);
        root.put("reason", reason);
        if (jobId != null) {
            root.put("job_id", jobId);
        }
        if (seq != null) {
            root.put("seq", seq);
        }
        ObjectNode source = root.putObject("source");
        source.put("topic", topic);
        source.put("partition", partition);
        source.put("offset", offset);
        putBytes(source, "key", key, MAX_INLINE_KEY_BYTES);
        putBytes(source, "value", value, maxInlineValueBytes);
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void putBytes(ObjectNode node, String field, byte[] bytes, int maxInlineBytes) {
        if (bytes == null) {
            node.putNull(field);
            return;
        }
        if (bytes.length > maxInlineBytes) {
            ObjectNode omitted = node.putObject(field + "_omitted");
            omitted.put("bytes", bytes.length);
            omitted.put("sha256", Sha256.of(bytes));
            return;
        }
        if (jsonStringLength(bytes) <= base64Length(bytes.length)) {
            try {
                node.put(field, StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString());
                return;
            } catch (CharacterCodingException e) {
                // not UTF-8: base64 below
            }
        }
        node.put(field + "_base64", Base64.getEncoder().encodeToString(bytes));
    }

    /** An upper bound of the UTF-8 text's length as a JSON string: escapes grow control characters to 6 bytes. */
    private static long jsonStringLength(byte[] utf8) {
        long length = 2;
        for (byte b : utf8) {
            length += b >= 0 && b < 0x20 ? 6 : b == '"' || b == '\\' ? 2 : 1;
        }
        return length;
    }

    private static long base64Length(long bytes) {
        return 4 * ((bytes + 2) / 3) + 2;
    }
}
