package dev.loraflow.demo;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.MergeFailureEvent;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.kafka.KafkaClientSettings;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.ArtifactStores;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * {@code ./loraflow demo}: the platform's main job end to end against running services. It makes a base
 * model, serves it and asks it the held-out cipher words, trains an adapter by streaming the bundled
 * words into Kafka, follows the loss, waits for the checkpoint → merge → ONNX → verified → served chain,
 * asks again, and checks that the served answers are token for token those of the merged model run in
 * Java. Each stage is timed; the first that fails ends the run with its name and the log to read.
 *
 * <p>Where the services are comes from the {@code run.env} that {@code ./loraflow up} writes
 * ({@code --env FILE}): TRAINER_URL, SERVING_URL, BOOTSTRAP_SERVERS, API_KEY, MODELS_ROOT, STORE_ROOT, LOGS.
 */
public final class Demo {

    static final String USAGE = """
            usage: loraflow-demo.jar --env RUN_ENV [--base DIR] [--steps N] [--report FILE]
              --env FILE    the run.env of ./loraflow up (service URLs, broker, API key, roots, logs)
              --base DIR    a Hugging Face GPT-2 or Llama directory to adapt (default: a new random GPT-2)
              --steps N     training steps (default 300; batches of 16 words)
              --report FILE the HTML report (default: demo-report.html in the current directory)
              --platform-up-seconds S  how long ./loraflow up took, shown as the first stage""";
    static final int BATCH_SIZE = 16;
    static final int SEQ_LEN = 24;
    /** Answers are four letters and the end-of-text token; a little room shows what a wrong answer rambles. */
    static final int MAX_ANSWER_TOKENS = 8;
    static final String TRAINING_TOPIC = "loraflow.training.batches";
    static final String CHECKPOINTS_TOPIC = "loraflow.adapter.checkpoints";
    static final String MERGED_TOPIC = "loraflow.models.merged";
    static final String MERGE_FAILURES_TOPIC = "loraflow.models.merge-failures";
    /** How long a server that follows the merged models may take to load one before the demo loads it. */
    static final Duration FOLLOW_WAIT = Duration.ofSeconds(20);
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A stage that failed: its name, why, and which log tells more. */
    static final class StageFailure extends Exception {
        final String stage;
        final String log;

        StageFailure(String stage, String message, String log) {
            super(message);
            this.stage = stage;
            this.log = log;
        }
    }

    /** The command line, with the services' whereabouts from run.env. */
    record Settings(URI trainer, URI serving, KafkaClientSettings kafka, String apiKey, Path modelsRoot, Path storeRoot,
                    Path logs, Path base, long steps, Path report, double platformUpSeconds) {

        static Settings parse(String[] args) throws IOException {
            Map<String, String> options = new LinkedHashMap<>();
            for (int i = 0; i < args.length; i++) {
                String name = args[i];
                if (!Set.of("--env", "--base", "--steps", "--report", "--platform-up-seconds").contains(name) || i + 1 == args.length) {
                    throw new IllegalArgumentException(name.startsWith("--") && i + 1 == args.length
                            ? name + " needs a value" : "unknown argument " + name);
                }
                options.put(name, args[++i]);
            }
            if (!options.containsKey("--env")) {
                throw new IllegalArgumentException("--env RUN_ENV is required (./loraflow up writes it)");
            }
            Map<String, String> env = readEnv(Path.of(options.get("--env")));
            long steps;
            try {
                steps = Long.parseLong(options.getOrDefault("--steps", "300"));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--steps must be a whole number, got " + options.get("--steps"));
            }
            if (steps < 1 || steps > 100_000) {
                throw new IllegalArgumentException("--steps must be in [1, 100000], got " + steps);
            }
            double platformUp;
            try {
                platformUp = Double.parseDouble(options.getOrDefault("--platform-up-seconds", "-1"));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--platform-up-seconds must be a number, got "
                        + options.get("--platform-up-seconds"));
            }
            URI trainer = URI.create(required(env, "TRAINER_URL"));
            URI serving = URI.create(required(env, "SERVING_URL"));
            required(env, "BOOTSTRAP_SERVERS");
            // The data producer's settings that up writes: BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL,
            // KAFKA_SASL_MECHANISM, KAFKA_USERNAME, KAFKA_PASSWORD.
            KafkaClientSettings kafka = KafkaClientSettings.fromConfig("kafka", key -> Optional.ofNullable(env.get(
                    key.equals("kafka." + KafkaClientSettings.BOOTSTRAP_SERVERS) ? "BOOTSTRAP_SERVERS"
                            : key.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_'))));
            return new Settings(trainer, serving, kafka, required(env, "API_KEY"), Path.of(required(env, "MODELS_ROOT")),
                    Path.of(required(env, "STORE_ROOT")), Path.of(env.getOrDefault("LOGS", ".")),
                    options.containsKey("--base") ? Path.of(options.get("--base")) : null, steps,
                    Path.of(options.getOrDefault("--report", "demo-report.html")).toAbsolutePath(), platformUp);
        }

        /** KEY=VALUE lines, as a shell sources them: comments and blank lines skipped, one level of quotes dropped. */
        static Map<String, String> readEnv(Path file) throws IOException {
            Map<String, String> env = new LinkedHashMap<>();
            for (String line : Files.readAllLines(file)) {
                String text = line.strip();
                if (text.startsWith("export ")) {
                    text = text.substring("export ".length()).strip();
                }
                int equals = text.indexOf('=');
                if (text.isEmpty() || text.startsWith("#") || equals < 1) {
                    continue;
                }
                String value = text.substring(equals + 1).strip();
                if (value.length() >= 2 && (value.charAt(0) == '"' || value.charAt(0) == '\'')
                        && value.charAt(value.length() - 1) == value.charAt(0)) {
                    value = value.substring(1, value.length() - 1);
                }
                env.put(text.substring(0, equals).strip(), value);
            }
            return env;
        }

        private static String required(Map<String, String> env, String key) {
            String value = env.get(key);
            if (value == null || value.isBlank()) {
                throw new IllegalArgumentException("the run.env has no " + key);
            }
            return value;
        }

        String log(String service) {
            return logs.resolve(service + ".log").toString();
        }
    }

    /** One prompt's completion as the server gave it. */
    record Answer(int[] tokens, String finishReason) {}

    private final Settings settings;
    private final PrintStream out;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private final List<DemoReport.Stage> stages = new ArrayList<>();
    private final List<DemoReport.LossPoint> loss = new CopyOnWriteArrayList<>();
    private final String jobId = "demo-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
    private volatile double tokensPerSecond;
    private long lastReportedStep;
    private String baseName;
    /** The name the server serves the model under, which every completion request names. */
    private String servedName;
    private Tokenizer tokenizer;
    /** What ends an answer, as serving decides it; the first is what the training answers end with. */
    private List<Integer> stopTokenIds;
    private int endOfText;
    private List<CipherTask.Pair> heldOut;
    private List<Answer> before = List.of();
    private List<Answer> after = List.of();
    private int identical;
    private int examplesSent;

    Demo(Settings settings, PrintStream out) {
        this.settings = settings;
        this.out = out;
    }

    public static void main(String[] args) {
        Settings settings;
        try {
            settings = Settings.parse(args);
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("demo: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        System.exit(new Demo(settings, System.out).run());
    }

    /** @return 0 when every stage passed, 1 when one failed (named on stderr) */
    int run() {
        String failure = null;
        if (settings.platformUpSeconds() >= 0) {
            stages.add(new DemoReport.Stage("platform up", settings.platformUpSeconds(), true));
        }
        try {
            stage("base model", "demo", this::baseModel);
            stage("serve the base", "serving", this::serveBase);
            stage("answers before", "serving", () -> before = ask());
            stage("submit job", "trainer", this::submitJob);
            stage("stream data into Kafka", "broker", this::streamExamples);
            stage("training", "trainer", this::followTraining);
            CheckpointEvent checkpoint = stage("checkpoint", "trainer", this::awaitCheckpoint);
            MergedModelEvent merged = stage("merge, ONNX export, verify", "merger", () -> awaitMerged(checkpoint));
            stage("serve the merged model", "serving", () -> serveMerged(merged));
            stage("answers after", "serving", () -> after = ask());
            stage("served = merged model in Java", "demo", () -> compareWithJava(merged));
        } catch (StageFailure e) {
            failure = "stage '" + e.stage + "' failed: " + e.getMessage();
            System.err.println("demo: " + failure);
            System.err.println("demo: see " + e.log);
        }
        try {
            summary();
            Files.createDirectories(settings.report().getParent());
            Files.writeString(settings.report(), report(failure).html());
            out.println("report: " + settings.report());
        } catch (IOException e) {
            System.err.println("demo: cannot write the report " + settings.report() + ": " + e.getMessage());
            return 1;
        } finally {
            if (tokenizer != null) {
                tokenizer.close();
            }
        }
        return failure == null ? 0 : 1;
    }

    @FunctionalInterface
    interface Work<T> {
        T run() throws Exception;
    }

    @FunctionalInterface
    interface VoidWork {
        void run() throws Exception;
    }

    private void stage(String name, String service, VoidWork work) throws StageFailure {
        stage(name, service, () -> {
            work.run();
            return null;
        });
    }

    private <T> T stage(String name, String service, Work<T> work) throws StageFailure {
        out.println("== " + name);
        long start = System.nanoTime();
        try {
            T result = work.run();
            double seconds = (System.nanoTime() - start) / 1e9;
            stages.add(new DemoReport.Stage(name, seconds, true));
            out.printf(Locale.ROOT, "   %s: %.1f s%n", name, seconds);
            return result;
        } catch (Exception e) {
            stages.add(new DemoReport.Stage(name, (System.nanoTime() - start) / 1e9, false));
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            String log = service.equals("demo") ? "the messages above" : settings.log(service);
            throw new StageFailure(name, e.getMessage() == null ? e.toString() : e.getMessage(), log);
        }
    }

    // --- the stages ---

    private void baseModel() throws IOException {
        if (settings.base() != null) {
            baseName = settings.base().toAbsolutePath().normalize().getFileName().toString();
            Path target = settings.modelsRoot().resolve(baseName);
            if (!Files.exists(target)) {
                copyTree(settings.base(), target);
            }
            out.println("   base: " + settings.base() + " (copied to the models root as " + baseName + ")");
        } else {
            // The smallest GPT-2 that learns the cipher in a few hundred steps (2 layers x 32 does not).
            ModelConfig config = new Gpt2Config(257, 64, 128, 4, 4, 512, 1e-5);
            baseName = "demo-gpt2";
            Path target = settings.modelsRoot().resolve(baseName);
            if (!Files.exists(target.resolve(RandomModel.CONFIG_FILE))) {
                RandomModel.write(config, 0, target);
            }
            out.printf(Locale.ROOT, "   base: random GPT-2, %d layers x %d hidden, context %d, byte-level vocabulary of %d%n",
                    config.numLayers(), config.hiddenSize(), config.maxPositions(), config.vocabSize());
        }
        Path base = settings.modelsRoot().resolve(baseName);
        Path tokenizerFile = base.resolve(Tokenizer.FILE_NAME);
        if (!Files.isRegularFile(tokenizerFile)) {
            throw new IOException(base + " has no tokenizer.json: the demo's words are text");
        }
        tokenizer = Tokenizer.load(tokenizerFile);
        stopTokenIds = StopTokens.of(base, tokenizer);
        if (stopTokenIds.isEmpty()) {
            throw new IOException(base + " names no end-of-text token");
        }
        endOfText = stopTokenIds.get(0);
        heldOut = CipherTask.bundled(CipherTask.HELD_OUT_FILE);
    }

    private void serveBase() throws Exception {
        Path base = settings.modelsRoot().resolve(baseName);
        Path served = settings.storeRoot().resolveSibling("demo-served").resolve(jobId + "-base");
        Files.createDirectories(served);
        Path onnx = served.resolve("model.onnx");
        Files.deleteIfExists(onnx);
        OnnxExporter.exportDirectory(base, null, OnnxExporter.Options.defaults(), onnx);
        copyModelFiles(base, served);
        servedName = load(onnx).path("name").asText();
    }

    private void submitJob() throws Exception {
        ObjectNode job = JSON.createObjectNode().put("schema", "loraflow.training.job").put("version", 1)
                .put("job_id", jobId).put("base_model", baseName);
        job.putObject("lora").put("r", 8).put("alpha", 16).put("dropout", 0.0).put("target_modules", "all-linear");
        job.putObject("optimizer").put("lr", 0.003).put("schedule", "cosine").put("warmup_steps", Math.min(10, settings.steps() / 10));
        job.put("batch_size", BATCH_SIZE).put("seq_len", SEQ_LEN).put("seed", 42).put("total_steps", settings.steps());
        job.putObject("checkpoint").put("every_steps", 0).put("at_end", true);
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(settings.trainer().resolve("/jobs"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + settings.apiKey())
                .timeout(Duration.ofSeconds(60)).POST(HttpRequest.BodyPublishers.ofString(job.toString())).build(),
                HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 202) {
            throw new IOException("POST /jobs answered " + response.statusCode() + ": " + response.body());
        }
        out.println("   job " + jobId + ": " + settings.steps() + " steps of " + BATCH_SIZE + " words, LoRA r 8 on every linear layer");
    }

    /** One record per step, the training words in file order and again from the start when the steps need more. */
    private void streamExamples() throws Exception {
        List<CipherTask.Pair> training = CipherTask.bundled(CipherTask.TRAINING_FILE);
        Properties config = new Properties();
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        byte[] key = jobId.getBytes(StandardCharsets.UTF_8);
        Progress progress = new Progress(out, "records", settings.steps());
        try (KafkaProducer<byte[], byte[]> producer = KafkaSetup.durableProducer(settings.kafka(), config)) {
            for (long seq = 0; seq < settings.steps(); seq++) {
                List<Example> examples = new ArrayList<>(BATCH_SIZE);
                for (int i = 0; i < BATCH_SIZE; i++) {
                    examples.add(example(training.get(examplesSent++ % training.size())));
                }
                producer.send(new ProducerRecord<>(TRAINING_TOPIC, key, TrainingBatch.encode(jobId, seq, examples)));
                progress.update(seq + 1);
            }
            producer.flush();
        }
        progress.done();
    }

    /** The trainer's progress stream until the last step: the loss curve and the throughput. */
    private void followTraining() throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(120 + 2 * settings.steps()).toNanos();
        long reportEvery = Math.max(1, settings.steps() / 10);
        while (true) {
            HttpResponse<Stream<String>> response = http.send(HttpRequest.newBuilder(
                            settings.trainer().resolve("/jobs/" + jobId + "/progress"))
                    .header("Accept", "text/event-stream").timeout(Duration.ofSeconds(60)).GET().build(),
                    HttpResponse.BodyHandlers.ofLines());
            if (response.statusCode() != 200) {
                throw new IOException("GET /jobs/" + jobId + "/progress answered " + response.statusCode());
            }
            try (Stream<String> lines = response.body()) {
                // A trainer that goes silent sends no line to check the deadline on: close the stream at it.
                Thread watchdog = Thread.ofVirtual().start(() -> {
                    try {
                        Thread.sleep(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
                        lines.close();
                    } catch (InterruptedException finished) {
                        // The stream ended first.
                    }
                });
                try {
                    if (readProgress(lines, deadline, reportEvery)) {
                        return;
                    }
                } finally {
                    watchdog.interrupt();
                }
            } catch (UncheckedIOException e) {
                // The stream ended under us (a timeout between events, or the deadline): open it again.
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("the job did not finish its " + settings.steps() + " steps in time; last step "
                        + (loss.isEmpty() ? 0 : loss.getLast().step()));
            }
        }
    }

    /** Reads status events into the loss curve; true once the last step is in. */
    private boolean readProgress(Stream<String> lines, long deadline, long reportEvery) throws IOException {
        for (String line : (Iterable<String>) lines::iterator) {
            if (System.nanoTime() > deadline) {
                throw new IOException("the job did not finish its " + settings.steps() + " steps in time; last step "
                        + (loss.isEmpty() ? 0 : loss.getLast().step()));
            }
            if (!line.startsWith("data:")) {
                continue;
            }
            JsonNode status = JSON.readTree(line.substring("data:".length()));
            long step = field(status, "step", "step").asLong();
            String state = field(status, "state", "state").asText();
            if (state.startsWith("FAILED")) {
                throw new IOException("the trainer reports " + state);
            }
            if (step > 0 && (loss.isEmpty() || loss.getLast().step() < step)) {
                loss.add(new DemoReport.LossPoint(step, field(status, "loss", "loss").asDouble()));
                double speed = field(status, "tokensPerSecond", "tokens_per_second").asDouble();
                if (speed > 0) {
                    tokensPerSecond = speed;
                }
                if (step - lastReportedStep >= reportEvery || step == settings.steps()) {
                    lastReportedStep = step;
                    out.printf(Locale.ROOT, "   step %4d/%d  loss %.3f  %,.0f tokens/s%n", step, settings.steps(),
                            loss.getLast().loss(), tokensPerSecond);
                }
            }
            if (step >= settings.steps()) {
                return true;
            }
        }
        return false;
    }

    private CheckpointEvent awaitCheckpoint() throws Exception {
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(List.of(CHECKPOINTS_TOPIC))) {
            long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(300))) {
                    CheckpointEvent event = CheckpointEvent.parse(record.value());
                    if (event.jobId().equals(jobId) && event.last()) {
                        out.printf(Locale.ROOT, "   step %d, loss %.3f: %s%n", event.step(), event.loss(), event.adapterUri());
                        return event;
                    }
                }
            }
        }
        throw new IOException("no final checkpoint of " + jobId + " on " + CHECKPOINTS_TOPIC + " within 120 s");
    }

    private MergedModelEvent awaitMerged(CheckpointEvent checkpoint) throws Exception {
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(List.of(MERGED_TOPIC, MERGE_FAILURES_TOPIC))) {
            long deadline = System.nanoTime() + Duration.ofSeconds(300).toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(300))) {
                    if (record.topic().equals(MERGE_FAILURES_TOPIC)) {
                        MergeFailureEvent failure = MergeFailureEvent.parse(record.value());
                        if (failure.model().equals(jobId)) {
                            throw new IOException("the merger refused the checkpoint: " + failure.reason() + ": "
                                    + failure.message());
                        }
                        continue;
                    }
                    MergedModelEvent event = MergedModelEvent.parse(record.value());
                    if (event.model().equals(jobId) && event.modelVersion() == checkpoint.step()) {
                        out.printf(Locale.ROOT, "   merged, exported, verified: max |Δlogit| %.2e (tolerance %.0e) over %d rows;"
                                        + " merge %.1f s, export %.1f s, verify %.1f s%n",
                                event.verification().maxAbsLogitError(), event.verification().tolerance(),
                                event.verification().rowsChecked(), event.timings().mergeSeconds(),
                                event.timings().exportSeconds(), event.timings().verifySeconds());
                        return event;
                    }
                }
            }
        }
        throw new IOException("no merged model for " + jobId + " on " + MERGED_TOPIC + " within 300 s");
    }

    /**
     * The server that follows {@code loraflow.models.merged} (as {@code ./loraflow up} starts it) loads the
     * merged graph by itself: wait until it serves that very file. One that does not follow is given the
     * graph, with the merged model's config and tokenizer beside it, through {@code POST /admin/models}.
     */
    private void serveMerged(MergedModelEvent merged) throws Exception {
        long deadline = System.nanoTime() + FOLLOW_WAIT.toNanos();
        JsonNode model = servedModel();
        while (!merged.onnxFileSha256().equals(model.path("sha256").asText()) && System.nanoTime() < deadline) {
            Thread.sleep(250);
            model = servedModel();
        }
        if (merged.onnxFileSha256().equals(model.path("sha256").asText())) {
            out.println("   the server follows the merged models: it switched to " + merged.model() + " v"
                    + merged.modelVersion() + " by itself");
        } else {
            out.println("   the server did not switch within " + FOLLOW_WAIT.toSeconds()
                    + " s (it does not follow the merged models): loading it through POST /admin/models");
            ArtifactStore store = store(settings);
            Path onnxArtifact = store.open(URI.create(merged.onnxUri()), merged.onnxSha256());
            Path mergedModel = store.open(URI.create(merged.mergedUri()), merged.mergedSha256());
            Path served = settings.storeRoot().resolveSibling("demo-served").resolve(jobId + "-v" + merged.modelVersion());
            Files.createDirectories(served);
            Path onnx = served.resolve(merged.onnxFile());
            Files.copy(onnxArtifact.resolve(merged.onnxFile()), onnx, StandardCopyOption.REPLACE_EXISTING);
            copyModelFiles(mergedModel, served);
            model = load(onnx);
        }
        servedName = model.path("name").asText();
        out.println("   serving " + servedName + " version " + model.path("version").asText() + " (SHA-256 "
                + model.path("sha256").asText().substring(0, 12) + "…, the merged graph's)");
    }

    /** The services' store: LORAFLOW_STORE_URI where demo.sh passes the bucket of ./loraflow up --store s3, else the directory. */
    private static ArtifactStore store(Settings settings) throws IOException {
        String location = System.getenv("LORAFLOW_STORE_URI");
        return ArtifactStores.open(location == null || location.isBlank() ? settings.storeRoot().toString() : location);
    }

    /** Greedy answers of the merged Hugging Face directory run by core's Generator, compared with the server's. */
    private void compareWithJava(MergedModelEvent merged) throws Exception {
        Path mergedModel = store(settings).open(URI.create(merged.mergedUri()),
                merged.mergedSha256());
        CausalLanguageModel model = CausalLanguageModel.load(mergedModel, null, 0);
        SamplingSettings greedy = SamplingSettings.greedy(MAX_ANSWER_TOKENS, Set.copyOf(stopTokenIds));
        List<String> differences = new ArrayList<>();
        identical = 0;
        for (int i = 0; i < heldOut.size(); i++) {
            GenerationResult java = Generator.generate(model, tokenizer.encode(heldOut.get(i).prompt()), greedy);
            int[] served = after.get(i).tokens();
            if (Arrays.equals(withoutEndOfText(java.tokens()), withoutEndOfText(served))) {
                identical++;
            } else if (differences.size() < 3) {
                differences.add(heldOut.get(i).prompt() + " served " + Arrays.toString(served) + ", Java "
                        + Arrays.toString(java.tokens()));
            }
        }
        out.println("   identical " + identical + "/" + heldOut.size());
        if (identical != heldOut.size()) {
            throw new IOException("the served answers differ from the merged model's Java answers: " + differences);
        }
    }

    // --- talking to the services ---

    /** {@code GET /admin/models}: what the server serves now (an empty object before any model). */
    private JsonNode servedModel() throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(settings.serving().resolve("/admin/models"))
                .header("Authorization", "Bearer " + settings.apiKey()).timeout(Duration.ofSeconds(30)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new IOException("GET /admin/models answered " + response.statusCode() + ": " + response.body());
        }
        return JSON.readTree(response.body());
    }

    /** {@code POST /admin/models}: the server loads, verifies and warms up the graph, then serves it. */
    private JsonNode load(Path onnx) throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(settings.serving().resolve("/admin/models"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + settings.apiKey())
                .timeout(Duration.ofSeconds(120))
                .POST(HttpRequest.BodyPublishers.ofString(JSON.createObjectNode().put("path", onnx.toString()).toString()))
                .build(), HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new IOException("POST /admin/models answered " + response.statusCode() + ": " + response.body());
        }
        return JSON.readTree(response.body());
    }

    /** Every held-out prompt through {@code /v1/completions}, greedy, a few at a time as clients would send them. */
    private List<Answer> ask() throws Exception {
        List<Answer> answers = new ArrayList<>();
        int correct = 0;
        for (CipherTask.Pair pair : heldOut) {
            ObjectNode request = JSON.createObjectNode().put("model", servedName).put("prompt", pair.prompt()).put("max_tokens", MAX_ANSWER_TOKENS)
                    .put("temperature", 0);
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(settings.serving().resolve("/v1/completions"))
                    .header("Content-Type", "application/json").timeout(Duration.ofSeconds(60))
                    .POST(HttpRequest.BodyPublishers.ofString(request.toString())).build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) {
                throw new IOException("POST /v1/completions answered " + response.statusCode() + ": " + response.body());
            }
            JsonNode choice = JSON.readTree(response.body()).path("choices").path(0);
            ArrayNode ids = (ArrayNode) choice.path("token_ids");
            int[] tokens = new int[ids.size()];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = ids.get(i).asInt();
            }
            Answer answer = new Answer(tokens, choice.path("finish_reason").asText());
            answers.add(answer);
            if (correct(pair, answer)) {
                correct++;
            }
        }
        for (int i = 0; i < 4 && i < heldOut.size(); i++) {
            out.printf("   %s-> %-10s (expected %s)%n", heldOut.get(i).prompt(), quoted(text(answers.get(i))),
                    heldOut.get(i).cipher());
        }
        out.printf(Locale.ROOT, "   held-out accuracy: %s%n", DemoReport.percent(correct, heldOut.size()));
        return answers;
    }

    private KafkaConsumer<byte[], byte[]> consumer(List<String> topics) {
        // The data producer's own groups (loraflow-producer-...) are the ones its ACLs let it read in.
        KafkaConsumer<byte[], byte[]> consumer = KafkaSetup.committedReader(settings.kafka(),
                "loraflow-producer-demo-" + UUID.randomUUID(), new Properties());
        consumer.subscribe(topics);
        return consumer;
    }

    // --- words, tokens, text ---

    private Example example(CipherTask.Pair pair) {
        return example(pair, tokenizer, endOfText);
    }

    /** The prompt's tokens, then the cipher's and the end-of-text token, only those in the loss. */
    static Example example(CipherTask.Pair pair, Tokenizer tokenizer, int endOfText) {
        int[] prompt = tokenizer.encode(pair.prompt());
        int[] answer = tokenizer.encode(pair.cipher());
        int[] ids = new int[prompt.length + answer.length + 1];
        int[] labels = new int[ids.length];
        Arrays.fill(labels, 0, prompt.length, -100);
        System.arraycopy(prompt, 0, ids, 0, prompt.length);
        System.arraycopy(answer, 0, ids, prompt.length, answer.length);
        System.arraycopy(answer, 0, labels, prompt.length, answer.length);
        ids[ids.length - 1] = endOfText;
        labels[ids.length - 1] = endOfText;
        return new Example(ids, labels);
    }

    private boolean correct(CipherTask.Pair pair, Answer answer) {
        return "stop".equals(answer.finishReason()) && pair.cipher().equals(text(answer));
    }

    private String text(Answer answer) {
        return tokenizer.decode(withoutEndOfText(answer.tokens()));
    }

    private int[] withoutEndOfText(int[] tokens) {
        return tokens.length > 0 && tokens[tokens.length - 1] == endOfText ? Arrays.copyOf(tokens, tokens.length - 1) : tokens;
    }

    private static String quoted(String text) {
        return '"' + visible(text) + '"';
    }

    /** Spaces as ␣ and control characters or broken UTF-8 as ·, so that an answer of blanks shows as one. */
    static String visible(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (char c : text.toCharArray()) {
            out.append(c == ' ' ? '␣' : c < ' ' || c == 0xfffd ? '·' : c);
        }
        return out.toString();
    }

    private static JsonNode field(JsonNode node, String camel, String snake) {
        return node.has(camel) ? node.get(camel) : node.path(snake);
    }

    // --- files ---

    private static void copyModelFiles(Path model, Path served) throws IOException {
        for (String file : List.of(RandomModel.CONFIG_FILE, Tokenizer.FILE_NAME, Tokenizer.CONFIG_FILE_NAME)) {
            if (Files.isRegularFile(model.resolve(file))) {
                Files.copy(model.resolve(file), served.resolve(file), StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> files = Files.walk(from)) {
            for (Path file : (Iterable<Path>) files::iterator) {
                Path target = to.resolve(from.relativize(file).toString());
                if (Files.isDirectory(file)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(file, target);
                }
            }
        }
    }

    // --- the end ---

    private void summary() {
        out.println();
        out.println("stage                              seconds");
        double total = 0;
        for (DemoReport.Stage stage : stages) {
            total += stage.seconds();
            out.printf(Locale.ROOT, "  %-32s %7.1f%s%n", stage.name(), stage.seconds(), stage.passed() ? "" : "  FAILED");
        }
        out.printf(Locale.ROOT, "  %-32s %7.1f%n", "total", total);
        if (!before.isEmpty() && !after.isEmpty()) {
            out.printf(Locale.ROOT, "held-out accuracy: %s before, %s after; identical %d/%d%n",
                    DemoReport.percent(correctCount(before), heldOut.size()),
                    DemoReport.percent(correctCount(after), heldOut.size()), identical, heldOut.size());
        }
    }

    private int correctCount(List<Answer> answers) {
        int correct = 0;
        for (int i = 0; i < answers.size(); i++) {
            if (correct(heldOut.get(i), answers.get(i))) {
                correct++;
            }
        }
        return correct;
    }

    private DemoReport report(String failure) {
        List<DemoReport.Sample> samples = new ArrayList<>();
        for (int i = 0; heldOut != null && i < Math.min(12, heldOut.size()); i++) {
            samples.add(new DemoReport.Sample(heldOut.get(i).prompt(), heldOut.get(i).cipher(),
                    i < before.size() ? visible(text(before.get(i))) : null,
                    i < after.size() ? visible(text(after.get(i))) : null));
        }
        int total = heldOut == null ? 0 : heldOut.size();
        return new DemoReport(jobId, baseName == null ? "?" : baseName, settings.steps(), examplesSent, tokensPerSecond,
                List.copyOf(loss), List.copyOf(stages), samples,
                new DemoReport.Accuracy(correctCount(before), correctCount(after), total),
                identical, after.isEmpty() ? 0 : total, failure);
    }
}
