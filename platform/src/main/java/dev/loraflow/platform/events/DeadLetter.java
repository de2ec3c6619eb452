package dev.loraflow.platform.events;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * A record of the dead-letter topic (schema {@value #SCHEMA}, version {@value #VERSION}): why a batch
 * could not be applied, where it came from, and the original record, so that nothing is lost. The
 * original value is kept as text when it is UTF-8 and as base64 otherwise.
 */
public final class DeadLetter {

    public static final String SCHEMA = "loraflow.training.dead-letter";
    public static final int VERSION = 1;

    private DeadLetter() {}

    public static byte[] encode(String reason, String topic, int partition, long offset, byte[] key, byte[] value,
                                String jobId, Long seq) {
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
        putBytes(source, "key", key);
        putBytes(source, "value", value);
        return root.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void putBytes(ObjectNode node, String field, byte[] bytes) {
        if (bytes == null) {
            node.putNull(field);
            return;
        }
        try {
            node.put(field, StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString());
        } catch (CharacterCodingException e) {
            node.put(field + "_base64", Base64.getEncoder().encodeToString(bytes));
        }
    }
}
