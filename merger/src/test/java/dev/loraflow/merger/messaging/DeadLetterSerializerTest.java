package dev.loraflow.merger.messaging;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.loraflow.platform.events.DeadLetter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.junit.jupiter.api.Test;

/** The checkpoints channel's dead letters are the platform's dead letters, and room is made for the largest. */
class DeadLetterSerializerTest {

    @Test
    void aRefusedRecordBecomesThePlatformsDeadLetterWithItsReasonSourceAndKey() throws IOException {
        RecordHeaders headers = new RecordHeaders();
        headers.add("dead-letter-reason", "not valid JSON: {not json".getBytes(StandardCharsets.UTF_8));
        headers.add("dead-letter-topic", "loraflow.adapter.checkpoints".getBytes(StandardCharsets.UTF_8));
        headers.add("dead-letter-partition", "3".getBytes(StandardCharsets.UTF_8));
        headers.add("dead-letter-offset", "41".getBytes(StandardCharsets.UTF_8));
        headers.add(DeadLetterSerializer.SOURCE_KEY, "j-1".getBytes(StandardCharsets.UTF_8));
        byte[] value = "{not json".getBytes(StandardCharsets.UTF_8);

        byte[] letter;
        try (DeadLetterSerializer serializer = new DeadLetterSerializer()) {
            letter = serializer.serialize("loraflow.models.dead-letters", headers, value);
        }
        assertEquals(new ObjectMapper().readTree(DeadLetter.encode("not valid JSON: {not json", "loraflow.adapter.checkpoints",
                3, 41, "j-1".getBytes(StandardCharsets.UTF_8), value, null, null, DeadLetterSerializer.MAX_RECORD_BYTES)),
                new ObjectMapper().readTree(letter));
        JsonNode source = new ObjectMapper().readTree(letter).path("source");
        assertEquals("j-1", source.path("key").asText());
        assertEquals(41, source.path("offset").asLong());
    }

    @Test
    void theDeadLetterProducerMayWriteALetterCarryingTheLargestRecord() throws IOException {
        Properties properties = new Properties();
        try (InputStream in = DeadLetterSerializerTest.class.getResourceAsStream("/application.properties")) {
            properties.load(in);
        }
        assertEquals(Integer.toString(DeadLetter.maxEncodedBytes(DeadLetterSerializer.MAX_RECORD_BYTES)),
                properties.getProperty("mp.messaging.incoming.checkpoints.max.request.size"));
    }
}
