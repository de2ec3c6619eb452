package dev.loraflow.merger.messaging;

import dev.loraflow.platform.events.DeadLetter;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The value serializer of the checkpoints channel's dead-letter queue: the connector sends the refused record's
 * value with its reason and source in {@code dead-letter-*} headers; this writes it as the platform's
 * {@link DeadLetter} (reason, source topic, partition, offset, key and value), the form every dead-letter
 * topic of loraflow carries (docs/events.md).
 */
public class DeadLetterSerializer implements Serializer<byte[]> {

    /** The refused record's key, which the consumer hands to the dead-letter queue as a header. */
    static final String SOURCE_KEY = "loraflow-source-key";
    /** The largest checkpoint record read (the broker's default): a dead letter copies up to this much of it. */
    public static final int MAX_RECORD_BYTES = 1 << 20;

    @Override
    public byte[] serialize(String topic, byte[] data) {
        throw new IllegalStateException("a dead letter needs the connector's dead-letter headers");
    }

    @Override
    public byte[] serialize(String topic, Headers headers, byte[] value) {
        Header key = headers.lastHeader(SOURCE_KEY);
        return DeadLetter.encode(text(headers, "dead-letter-reason", "unknown"), text(headers, "dead-letter-topic", null),
                Integer.parseInt(text(headers, "dead-letter-partition", "-1")),
                Long.parseLong(text(headers, "dead-letter-offset", "-1")), key == null ? null : key.value(), value, null,
                null, MAX_RECORD_BYTES);
    }

    private static String text(Headers headers, String name, String otherwise) {
        Header header = headers.lastHeader(name);
        return header == null ? otherwise : new String(header.value(), StandardCharsets.UTF_8);
    }
}
