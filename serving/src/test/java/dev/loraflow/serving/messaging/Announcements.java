package dev.loraflow.serving.messaging;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.inference.TinyModels;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.WeightQuantization;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.platform.events.EventFormatException;
import dev.loraflow.platform.events.MergeOutcomes;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.events.ModelLineage;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.eclipse.microprofile.config.ConfigProvider;

/** What the merger and trainer would announce, made from tiny models: store artifacts, events, records. */
final class Announcements {

    static final String MODELS_TOPIC = "loraflow.models.merged";
    static final String CHECKPOINTS_TOPIC = "loraflow.adapter.checkpoints";
    static final String SHA_ZERO = "0".repeat(64);
    private static final ObjectMapper JSON = new ObjectMapper();

    private Announcements() {}

    /** A merged model as the merger stores it: the graph alone in one artifact, config.json and tokenizer in another. */
    record Release(String onnxUri, String onnxSha256, String onnxFileSha256, String mergedUri, String mergedSha256) {

        String encode() {
            return String.join(" ", onnxUri, onnxSha256, onnxFileSha256, mergedUri, mergedSha256);
        }

        static Release decode(String encoded) {
            String[] parts = encoded.split(" ");
            return new Release(parts[0], parts[1], parts[2], parts[3], parts[4]);
        }
    }

    static CausalLanguageModel model(long seed) {
        return TinyModels.model(TinyModels.GPT2, seed);
    }

    /**
     * Exports tiny GPT-2 {@code seed} and stores it in the merger's layout. The merged directory holds the
     * files serving reads from it (config.json and the tokenizer), not the merged weights it never reads.
     */
    static Release release(LocalArtifactStore store, long seed, Path work) throws IOException {
        return release(store, seed, WeightQuantization.none(), work);
    }

    /** As {@link #release(LocalArtifactStore, long, Path)}, the graph's weights stored as {@code quantization} says. */
    static Release release(LocalArtifactStore store, long seed, WeightQuantization quantization, Path work)
            throws IOException {
        String name = seed + "-" + quantization.precision().label();
        Path exported = TinyModels.export(model(seed), TinyModels.weights(TinyModels.GPT2, seed), work.resolve("export-" + name),
                OnnxExporter.Options.defaults().withQuantization(quantization));
        Path onnx = Files.createDirectories(work.resolve("onnx-" + name));
        Files.move(exported, onnx.resolve("model.onnx"));
        Path merged = Files.createDirectories(work.resolve("merged-" + name));
        for (String file : new String[] {"config.json", Tokenizer.FILE_NAME, Tokenizer.CONFIG_FILE_NAME}) {
            Files.move(exported.resolveSibling(file), merged.resolve(file));
        }
        ArtifactStore.Artifact graph = store.putDirectory(onnx);
        ArtifactStore.Artifact directory = store.putDirectory(merged);
        return new Release(graph.uri().toString(), graph.sha256(), Sha256.of(onnx.resolve("model.onnx")),
                directory.uri().toString(), directory.sha256());
    }

    static MergedModelEvent event(String model, long version, Release release) {
        return new MergedModelEvent(model, version, release.onnxUri(), release.onnxSha256(), "model.onnx",
                release.onnxFileSha256(), 17, release.mergedUri(), release.mergedSha256(), "f32",
                new MergedModelEvent.Verification(true, 2e-6, 1e-4, 56, true),
                new ModelLineage("tiny-base", SHA_ZERO, model, version, release.mergedUri(), SHA_ZERO),
                new MergedModelEvent.Timings(0.1, 0.2, 0.3));
    }

    /**
     * The event of a merger publishing an int4 graph alone ({@code loraflow.merger.graphs=int4}): {@code onnx} names the
     * int4 graph, listed again in {@code quantized} with its loss figures.
     */
    static MergedModelEvent int4Event(String model, long version, Release release) {
        MergedModelEvent.QuantizedGraph int4 = new MergedModelEvent.QuantizedGraph("int4",
                WeightQuantization.of(WeightQuantization.Precision.INT4).describe(), true, release.onnxUri(),
                release.onnxSha256(), "model.onnx", release.onnxFileSha256(), 0.05, 0.01, 3.8, 3.81, 0.003, 0.05, null);
        return new MergedModelEvent(model, version, release.onnxUri(), release.onnxSha256(), "model.onnx",
                release.onnxFileSha256(), 17, release.mergedUri(), release.mergedSha256(), "base",
                new MergedModelEvent.Verification(true, 0.05, Double.NaN, 56, false),
                new ModelLineage("tiny-base", SHA_ZERO, model, version, release.mergedUri(), SHA_ZERO),
                new MergedModelEvent.Timings(0.1, 0.2, 0.3), List.of(int4), "int4");
    }

    static ProducerRecord<byte[], byte[]> record(String topic, String key, byte[] value) {
        return new ProducerRecord<>(topic, key.getBytes(StandardCharsets.UTF_8), value);
    }

    static ProducerRecord<byte[], byte[]> record(String topic, String key, String value) {
        return record(topic, key, value.getBytes(StandardCharsets.UTF_8));
    }

    /** The client settings of one of the test broker's users, as the test resource configured them. */
    static KafkaClientSettings client(String user) {
        return KafkaClientSettings.fromConfig("loraflow.test.kafka." + user,
                key -> ConfigProvider.getConfig().getOptionalValue(key, String.class));
    }

    /**
     * Records {@code event} in the store as the merger's outcome of its model and version, exactly as the
     * merge loop does before it publishes (status merged, published): what serving checks an event against.
     */
    static void recordOutcome(ArtifactStore store, MergedModelEvent event, String status) throws IOException {
        ObjectNode outcome = JSON.createObjectNode();
        outcome.put("status", status);
        outcome.put("topic", MODELS_TOPIC);
        outcome.put("key", event.model());
        outcome.put("published", true);
        outcome.set("event", JSON.readTree(event.encode()));
        store.writeReference(MergeOutcomes.reference(event.model(), event.modelVersion()), JSON.writeValueAsBytes(outcome));
    }

    /** Records each value that is a merged model event as merged ({@link #recordOutcome}); malformed ones are left alone. */
    static void recordOutcomes(ArtifactStore store, List<ProducerRecord<byte[], byte[]>> records) throws IOException {
        for (ProducerRecord<byte[], byte[]> record : records) {
            try {
                recordOutcome(store, MergedModelEvent.parse(record.value()), "merged");
            } catch (EventFormatException malformed) {
                // Never recorded by a merger: it announces only events it could encode.
            }
        }
    }

    /** Publishes in order as {@code client}, each acknowledged before the next is sent. */
    static void publish(KafkaClientSettings client, List<ProducerRecord<byte[], byte[]>> records) {
        Properties config = client.properties();
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            for (ProducerRecord<byte[], byte[]> record : records) {
                producer.send(record).get();
            }
        } catch (InterruptedException | ExecutionException e) {
            throw new IllegalStateException("cannot publish", e);
        }
    }

    static void await(String what, BooleanSupplier condition) {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting until " + what);
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    /** A counter's value in /q/metrics, 0 when absent: {@code name} and every label given, in any order. */
    static double metric(String name, String... labels) {
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        return metrics.lines().filter(line -> line.startsWith(name + "{"))
                .filter(line -> {
                    for (String label : labels) {
                        if (!line.contains(label)) {
                            return false;
                        }
                    }
                    return true;
                })
                .mapToDouble(line -> Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1)))
                .findFirst().orElse(0);
    }
}
