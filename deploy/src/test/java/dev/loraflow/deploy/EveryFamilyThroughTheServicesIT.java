package dev.loraflow.deploy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.broker.KafkaBrokerExtension;
import dev.loraflow.broker.LocalKafkaBroker;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.TinyModels;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.safetensors.SafetensorsWriter;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.store.LocalArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every decoder family (Llama 2 and 3 with llama3 RoPE scaling, Qwen2, Mistral, Gemma, Gemma 2, Phi-3) through
 * the packaged services as separate processes on a real broker, by their public interfaces only: a job over
 * REST and its batches on {@code loraflow.training.batches} train a tiny random base of the family in the
 * trainer; the merger merges the final checkpoint, exports and verifies the graph and announces it on
 * {@code loraflow.models.merged}; serving follows the announcement, and its answers through OpenAI
 * {@code /v1/completions} and KServe {@code /v2/.../infer} are token for token the greedy answers of the
 * announced merged model run by core's Java generator. The tiny configs make each family's difference
 * matter (windows shorter than the answers, soft-caps that bite, fused projections, biases, tied heads).
 * Skipped, saying why, where the service jars have not been packaged.
 */
class EveryFamilyThroughTheServicesIT {

    /** Three minutes to start, rather than one: the suite often runs beside other builds on two cores. */
    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension(LocalKafkaBroker.Options.defaults()
            .withStartTimeout(Duration.ofMinutes(3)));
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final Path ROOT = Path.of(System.getProperty("loraflow.root", "..")).toAbsolutePath().normalize();
    private static final String API_KEY = "families-it-key";
    private static final String BATCHES = "loraflow.training.batches";
    private static final String MERGED = "loraflow.models.merged";
    private static final int STEPS = 3;
    private static final int BATCH_SIZE = 2;
    private static final int ANSWER_TOKENS = 12;
    private static final Duration PIPELINE_TIMEOUT = Duration.ofMinutes(3);

    /** Kept after the run (under target/), so the services' logs can be read when it fails. */
    private static final Path HOME = Path.of("target/every-family-it").toAbsolutePath();
    private static final List<ServiceProcess> SERVICES = new ArrayList<>();
    private static ServiceProcess trainer;
    private static ServiceProcess serving;
    private static KafkaConsumer<byte[], byte[]> announcements;

    static Stream<Arguments> families() {
        return TinyModels.DECODER_FAMILIES.stream().map(config -> Arguments.of(TinyModels.name(config), config));
    }

    @BeforeAll
    static void startThePlatform() throws Exception {
        Map<String, Path> jars = ServiceProcess.packagedServices(ROOT);
        ServiceProcess.deleteTree(HOME);
        Path logs = Files.createDirectories(HOME.resolve("logs"));
        Path models = Files.createDirectories(HOME.resolve("models"));
        for (DecoderConfig config : TinyModels.DECODER_FAMILIES) {
            writeBase(models.resolve(TinyModels.name(config)), config);
        }
        Map<String, String> common = Map.of("KAFKA_BOOTSTRAP_SERVERS", KAFKA.broker().bootstrapServers(),
                "LORAFLOW_MODELS_ROOT", models.toString(), "LORAFLOW_STORE_ROOT", HOME.resolve("store").toString(),
                "LORAFLOW_API_KEYS", API_KEY);
        trainer = start("trainer", jars, common, Map.of());
        ServiceProcess merger = start("merger", jars, common,
                Map.of("LORAFLOW_MERGER_WORK_DIR", HOME.resolve("merger-work").toString()));
        serving = start("serving", jars, common, Map.of("LORAFLOW_SERVING_FOLLOW_MODELS", "true",
                "LORAFLOW_SERVING_FOLLOW_MODEL_NAMES", "*",
                "QUARKUS_GRPC_SERVER_PORT", Integer.toString(ServiceProcess.freePort())));
        trainer.awaitOk("/q/health/ready", Duration.ofSeconds(120));
        merger.awaitOk("/q/health/ready", Duration.ofSeconds(120));
        serving.awaitOk("/q/health/live", Duration.ofSeconds(120));
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "families-it-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        announcements = new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        announcements.subscribe(List.of(MERGED));
    }

    private static ServiceProcess start(String name, Map<String, Path> jars, Map<String, String> common,
                                        Map<String, String> extra) throws IOException {
        Map<String, String> environment = new HashMap<>(common);
        environment.putAll(extra);
        // Each service signs in as its own Kafka user, as ./loraflow up starts it.
        environment.put("LORAFLOW_KAFKA_USERNAME", name);
        environment.put("LORAFLOW_KAFKA_PASSWORD", KAFKA.broker().password(name));
        ServiceProcess service = new ServiceProcess(name, jars.get(name), environment, HOME.resolve("logs")).start();
        SERVICES.add(service);
        return service;
    }

    @AfterAll
    static void stopThePlatform() throws Exception {
        if (announcements != null) {
            announcements.close();
        }
        for (ServiceProcess service : SERVICES) {
            service.close();
        }
    }

    /** config.json and model.safetensors, no tokenizer: jobs, batches and prompts are token ids. */
    private static void writeBase(Path directory, DecoderConfig config) throws IOException {
        ModelLayout layout = ModelLayout.of(config);
        SafetensorsWriter writer = new SafetensorsWriter().putMetadata("format", "pt");
        // Spread weights: logits several units apart, so that greedy choices are no near-ties between runtimes.
        TinyModels.spreadWeights(config, 11).forEach((name, values) ->
                writer.add(name, values, DType.F32, layout.weight(name).shape()));
        Files.createDirectories(directory);
        writer.write(directory.resolve("model.safetensors"));
        Files.writeString(directory.resolve("config.json"), config.toJson());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void trainedFromKafkaMergedAndServedAsTheJavaGeneratorAnswers(String family, DecoderConfig config) throws Exception {
        String job = "family-" + family;
        ObjectNode definition = (ObjectNode) JSON.readTree("""
                {"schema": "loraflow.training.job", "version": 1, "job_id": "%s", "base_model": "%s",
                 "lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"},
                 "optimizer": {"lr": 0.05, "schedule": "constant"},
                 "batch_size": %d, "seq_len": 16, "seed": 3, "total_steps": %d}
                """.formatted(job, family, BATCH_SIZE, STEPS));
        HttpResponse<String> accepted = HTTP.send(HttpRequest.newBuilder(url(trainer, "/jobs"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + API_KEY)
                .POST(HttpRequest.BodyPublishers.ofString(definition.toString())).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(202, accepted.statusCode(), accepted.body());
        List<Example> examples = examples(STEPS * BATCH_SIZE, config.vocabSize(), family.hashCode());
        Properties producerConfig = KAFKA.broker().clientProperties(PlatformUsers.PRODUCER);
        producerConfig.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerConfig, new ByteArraySerializer(),
                new ByteArraySerializer())) {
            for (int seq = 0; seq < STEPS; seq++) {
                producer.send(new ProducerRecord<>(BATCHES, job.getBytes(StandardCharsets.UTF_8), TrainingBatch.encode(job,
                        seq, examples.subList(seq * BATCH_SIZE, (seq + 1) * BATCH_SIZE)))).get();
            }
        }

        MergedModelEvent merged = awaitAnnouncement(job);
        assertEquals(STEPS, merged.modelVersion(), "the final checkpoint's step");
        assertTrue(merged.verification().passed(), "the merger verified the graph against the Java forward");
        String served = awaitServed(job, merged.modelVersion());

        Path mergedModel = new LocalArtifactStore(HOME.resolve("store")).open(URI.create(merged.mergedUri()),
                merged.mergedSha256());
        CausalLanguageModel model = CausalLanguageModel.load(mergedModel, null, 0);
        assertEquals(config.modelType(), model.config().modelType(), "the merged model is of the family");
        SamplingSettings greedy = SamplingSettings.greedy(ANSWER_TOKENS, new HashSet<>(StopTokens.of(mergedModel, null)));
        for (int prompt = 0; prompt < 3; prompt++) {
            int[] ids = examples(1, config.vocabSize(), 100 + prompt).getFirst().inputIds();
            int[] java = Generator.generate(model, ids, greedy).tokens();
            assertArrayEquals(java, completion(served, ids), family + ": OpenAI /v1/completions of " + Arrays.toString(ids));
            assertArrayEquals(java, kserveInfer(served, ids), family + ": KServe /v2 infer of " + Arrays.toString(ids));
        }
    }

    /** Reads the announcements until the merger announces {@code job}'s model. */
    private static MergedModelEvent awaitAnnouncement(String job) throws Exception {
        long deadline = System.nanoTime() + PIPELINE_TIMEOUT.toNanos();
        while (true) {
            for (ConsumerRecord<byte[], byte[]> record : announcements.poll(Duration.ofMillis(250))) {
                MergedModelEvent event = MergedModelEvent.parse(record.value());
                if (event.model().equals(job)) {
                    return event;
                }
            }
            assertTrue(System.nanoTime() < deadline, job + " was not announced within " + PIPELINE_TIMEOUT.toSeconds()
                    + " s:\n" + tails());
        }
    }

    /** Waits until serving serves the announced model; its name in requests. */
    private static String awaitServed(String job, long version) throws Exception {
        long deadline = System.nanoTime() + PIPELINE_TIMEOUT.toNanos();
        while (true) {
            HttpResponse<String> models = serving.get("/v1/models");
            if (models != null && models.statusCode() == 200) {
                JsonNode first = JSON.readTree(models.body()).path("data").path(0);
                JsonNode announced = first.path("announced");
                if (announced.path("model").asText().equals(job) && announced.path("model_version").asLong() == version) {
                    return first.path("id").asText();
                }
            }
            assertTrue(System.nanoTime() < deadline, "serving did not take " + job + " v" + version + ":\n" + serving.tail());
            Thread.sleep(200);
        }
    }

    private static int[] completion(String model, int[] prompt) throws Exception {
        ObjectNode request = JSON.createObjectNode().put("model", model).put("max_tokens", ANSWER_TOKENS).put("temperature", 0);
        var ids = request.putArray("prompt");
        for (int id : prompt) {
            ids.add(id);
        }
        return ints(post("/v1/completions", request).path("choices").path(0).path("token_ids"));
    }

    private static int[] kserveInfer(String model, int[] prompt) throws Exception {
        ObjectNode request = JSON.createObjectNode();
        ObjectNode input = request.putArray("inputs").addObject().put("name", "input_ids").put("datatype", "INT64");
        input.putArray("shape").add(1).add(prompt.length);
        var data = input.putArray("data");
        for (int id : prompt) {
            data.add(id);
        }
        request.putObject("parameters").put("max_tokens", ANSWER_TOKENS).put("temperature", 0);
        JsonNode response = post("/v2/models/" + model + "/infer", request);
        for (JsonNode output : response.path("outputs")) {
            if (output.path("name").asText().equals("output_ids")) {
                return ints(output.path("data"));
            }
        }
        throw new AssertionError("no output_ids in " + response);
    }

    private static JsonNode post(String path, ObjectNode body) throws Exception {
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(url(serving, path))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, response.statusCode(), path + ": " + response.body());
        return JSON.readTree(response.body());
    }

    private static int[] ints(JsonNode array) {
        assertTrue(array.isArray(), "token ids: " + array);
        int[] values = new int[array.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = array.get(i).asInt();
        }
        return values;
    }

    private static URI url(ServiceProcess service, String path) {
        return URI.create("http://127.0.0.1:" + service.port() + path);
    }

    /** Examples of 6 to 16 random ids, labels the ids. */
    private static List<Example> examples(int count, int vocab, long seed) {
        java.util.Random random = new java.util.Random(seed);
        List<Example> examples = new ArrayList<>();
        for (int e = 0; e < count; e++) {
            int[] ids = random.ints(6 + random.nextInt(11), 0, vocab).toArray();
            examples.add(new Example(ids, ids));
        }
        return examples;
    }

    private static String tails() throws IOException {
        StringBuilder text = new StringBuilder();
        for (ServiceProcess service : SERVICES) {
            text.append("--- ").append(service.name()).append(" ---\n").append(service.tail()).append('\n');
        }
        return text.toString();
    }
}
