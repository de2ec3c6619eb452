package dev.loraflow.platform.kafka;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.types.Password;
import org.apache.kafka.common.security.JaasContext;
import org.apache.kafka.common.security.auth.SecurityProtocol;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KafkaClientSettingsTest {

    private static KafkaClientSettings read(Map<String, String> config) {
        return KafkaClientSettings.fromConfig("loraflow.kafka", key -> Optional.ofNullable(config.get(key)));
    }

    @Test
    void aServicesSettingsBecomeSaslClientPropertiesWithItsUser() {
        KafkaClientSettings settings = read(Map.of("loraflow.kafka.bootstrap-servers", "broker:9092",
                "loraflow.kafka.username", "trainer", "loraflow.kafka.password", "s3cret"));
        Properties properties = settings.properties();
        assertEquals("broker:9092", properties.getProperty("bootstrap.servers"));
        assertEquals("SASL_PLAINTEXT", properties.getProperty("security.protocol"));
        assertEquals("SCRAM-SHA-512", properties.getProperty("sasl.mechanism"));
        assertEquals("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"trainer\" password=\"s3cret\";",
                properties.getProperty("sasl.jaas.config"));
        assertFalse(settings.toString().contains("s3cret"), settings.toString());
        assertEquals(settings, KafkaClientSettings.scram("broker:9092", "trainer", "s3cret"));
    }

    @Test
    void aPasswordFileIsReadWhenNoPasswordIsSetAndAnUnreadableOneIsNamed(@TempDir Path directory) throws IOException {
        Path file = Files.writeString(directory.resolve("password"), "from-the-secret\n");
        KafkaClientSettings settings = read(Map.of("loraflow.kafka.bootstrap-servers", "b:1",
                "loraflow.kafka.username", "merger", "loraflow.kafka.password-file", file.toString()));
        assertEquals("from-the-secret", settings.password());
        // A password set directly wins over the file.
        assertEquals("direct", read(Map.of("loraflow.kafka.bootstrap-servers", "b:1", "loraflow.kafka.username", "merger",
                "loraflow.kafka.password", "direct", "loraflow.kafka.password-file", file.toString())).password());
        Path missing = directory.resolve("missing");
        IllegalArgumentException unreadable = assertThrows(IllegalArgumentException.class,
                () -> read(Map.of("loraflow.kafka.bootstrap-servers", "b:1", "loraflow.kafka.username", "merger",
                        "loraflow.kafka.password-file", missing.toString())));
        assertTrue(unreadable.getMessage().startsWith("loraflow.kafka.password-file " + missing + " cannot be read"),
                unreadable.getMessage());
    }

    @Test
    void quotesAndBackslashesInAPasswordReachTheLoginModuleAsTheyAre() {
        String password = "a\"b\\c d";
        String jaas = KafkaClientSettings.scram("b:1", "user \"x\"", password).properties().getProperty("sasl.jaas.config");
        // Kafka's own JAAS parser reads the line back to the very same name and password.
        JaasContext parsed = JaasContext.loadClientContext(Map.of(SaslConfigs.SASL_JAAS_CONFIG, new Password(jaas)));
        Map<String, ?> options = parsed.configurationEntries().getFirst().getOptions();
        assertEquals(password, options.get("password"));
        assertEquals("user \"x\"", options.get("username"));
    }

    @Test
    void plaintextNeedsNoUserAndSaslRefusesToStartWithoutOne() {
        Properties plaintext = read(Map.of("loraflow.kafka.bootstrap-servers", "b:1",
                "loraflow.kafka.security-protocol", "plaintext")).properties();
        assertEquals(SecurityProtocol.PLAINTEXT.name, plaintext.getProperty("security.protocol"));
        assertNull(plaintext.getProperty("sasl.jaas.config"));

        IllegalArgumentException noPassword = assertThrows(IllegalArgumentException.class,
                () -> read(Map.of("loraflow.kafka.bootstrap-servers", "b:1", "loraflow.kafka.username", "merger",
                        "loraflow.kafka.password", "")));
        assertTrue(noPassword.getMessage().contains("needs a user name and a password"), noPassword.getMessage());
        assertEquals("loraflow.kafka.bootstrap-servers is not set",
                assertThrows(IllegalArgumentException.class, () -> read(Map.of())).getMessage());
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("loraflow.kafka.bootstrap-servers", "b:1",
                "loraflow.kafka.security-protocol", "SSL", "loraflow.kafka.username", "u", "loraflow.kafka.password", "p")));
        assertThrows(IllegalArgumentException.class, () -> read(Map.of("loraflow.kafka.bootstrap-servers", "b:1",
                "loraflow.kafka.sasl-mechanism", "GSSAPI", "loraflow.kafka.username", "u", "loraflow.kafka.password", "p")));
    }
}
