package dev.loraflow.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.loraflow.platform.kafka.KafkaClientSettings;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The driver reads the run.env that ./loraflow up writes (bash's printf %q), and says what is wrong with its arguments. */
class DemoSettingsTest {

    @TempDir
    Path temp;

    private Path runEnv(String text) throws IOException {
        return Files.writeString(temp.resolve("run.env"), text);
    }

    @Test
    void readsWhatUpWrites() throws IOException {
        Path env = runEnv("""
                STATUS=up
                TRAINER_URL=http://127.0.0.1:4100
                SERVING_URL=http://127.0.0.1:4300
                BOOTSTRAP_SERVERS=127.0.0.1:9092
                KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT
                KAFKA_SASL_MECHANISM=SCRAM-SHA-512
                KAFKA_USERNAME=producer
                KAFKA_PASSWORD=0a1b2c3d4e5f60718293a4b5c6d7e8f9
                API_KEY=0123abcd
                MODELS_ROOT=/srv/loraflow/models
                STORE_ROOT='/srv/lora flow/artifacts'
                # a comment
                LOGS="/srv/loraflow/logs"
                """);
        Demo.Settings settings = Demo.Settings.parse(new String[] {"--env", env.toString(), "--steps", "40"});
        assertEquals(URI.create("http://127.0.0.1:4100"), settings.trainer());
        assertEquals(URI.create("http://127.0.0.1:4300"), settings.serving());
        assertEquals(KafkaClientSettings.scram("127.0.0.1:9092", "producer", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
                settings.kafka());
        assertEquals("0123abcd", settings.apiKey());
        assertEquals(Path.of("/srv/lora flow/artifacts"), settings.storeRoot());
        assertEquals("/srv/loraflow/logs/trainer.log", settings.log("trainer"));
        assertEquals(40, settings.steps());
        assertNull(settings.base());
        assertEquals(Path.of("demo-report.html").toAbsolutePath(), settings.report());
    }

    @Test
    void wrongArgumentsAreNamed() throws IOException {
        Path env = runEnv("TRAINER_URL=http://127.0.0.1:1\nSERVING_URL=http://127.0.0.1:2\nBOOTSTRAP_SERVERS=b\n"
                + "KAFKA_USERNAME=producer\nKAFKA_PASSWORD=p\nAPI_KEY=k\nMODELS_ROOT=/m\nSTORE_ROOT=/s\n");
        String e = env.toString();
        assertEquals("--env RUN_ENV is required (./loraflow up writes it)", message());
        assertEquals("unknown argument --epochs", message("--env", e, "--epochs", "3"));
        assertEquals("--steps needs a value", message("--env", e, "--steps"));
        assertEquals("--steps must be a whole number, got many", message("--env", e, "--steps", "many"));
        assertEquals("--steps must be in [1, 100000], got 0", message("--env", e, "--steps", "0"));
        assertEquals("unknown argument --model", message("--env", e, "--model", "huge"));
        Path incomplete = Files.writeString(temp.resolve("incomplete.env"), "TRAINER_URL=http://127.0.0.1:1\n");
        assertEquals("the run.env has no SERVING_URL", message("--env", incomplete.toString()));
        Path anonymous = Files.writeString(temp.resolve("anonymous.env"), "TRAINER_URL=http://127.0.0.1:1\n"
                + "SERVING_URL=http://127.0.0.1:2\nBOOTSTRAP_SERVERS=b\nAPI_KEY=k\nMODELS_ROOT=/m\nSTORE_ROOT=/s\n");
        assertEquals("Kafka security protocol SASL_PLAINTEXT needs a user name and a password (the Kafka broker requires"
                + " authentication)", message("--env", anonymous.toString()));
    }

    private static String message(String... args) {
        return assertThrows(IllegalArgumentException.class, () -> Demo.Settings.parse(args)).getMessage();
    }
}
