package dev.loraflow.benchmarks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.broker.KafkaBrokerExtension;
import dev.loraflow.broker.PlatformUsers;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.platform.kafka.KafkaSetup;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.TrainingBatch;
import dev.loraflow.platform.events.TrainingJob;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.trainer.service.BaseModels;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The trainer's performance figures, measured side by side in one run (not part of the test suite:
 * {@code bench/run-trainer.sh} runs it): the pipeline's overhead — a job through Kafka and the
 * packaged service against core's Trainer on the same examples, as {@code ./loraflow train} runs it —
 * and the cost of a checkpoint of a GPT-2-small r = 8 adapter.
 */
class PipelineBenchmark {

    @RegisterExtension
    static final KafkaBrokerExtension KAFKA = new KafkaBrokerExtension();

    @TempDir
    static Path root;

    /** GPT-2 small, batch 4 × 256: the shape of the training-throughput benchmark against PyTorch. */
    private static final Gpt2Config MODEL = new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5);
    private static final int SEQ = 256;
    private static final int STEPS = 15;
    private static final int CADENCE = 5;

    private static final String JOB = """
            {"schema": "loraflow.training.job", "version": 1, "job_id": "%s", "base_model": "bench",
             "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["c_attn"]},
             "optimizer": {"lr": 0.0002, "schedule": "cosine"},
             "batch_size": 4, "seq_len": 256, "seed": 3, "total_steps": %d,
             "checkpoint": {"every_steps": %d, "at_end": true}}""";

    @Test
    void pipelineOverheadAndCheckpointCost() throws Exception {
        RandomModel.write(MODEL, 1, root.resolve("models").resolve("bench"));
        TrainingJob job = TrainingJob.parse(JOB.formatted("pipeline", STEPS, CADENCE).getBytes(StandardCharsets.UTF_8));
        List<Example> examples = examples();
        KafkaSetup.ensureTopics(KAFKA.broker().clientSettings(PlatformUsers.ADMIN), Map.of("loraflow.training.jobs", 1,
                "loraflow.training.batches", 4, "loraflow.adapter.checkpoints", 4, "loraflow.training.dead-letters", 1));

        double[] direct = new double[3];
        double[] pipeline = new double[3];
        double[] directSteady = new double[3];
        double[] pipelineSteady = new double[3];
        for (int round = 0; round < direct.length; round++) {
            direct[round] = directSecondsInFreshJvm(root.resolve("direct-" + round));
            directSteady[round] = lastSteadySeconds;
            pipeline[round] = pipelineSeconds(job, examples, "pipeline-" + round);
            pipelineSteady[round] = pipelineSteadySeconds;
        }
        double bestDirect = Arrays.stream(direct).min().orElseThrow();
        double bestPipeline = Arrays.stream(pipeline).min().orElseThrow();
        long tokens = (long) STEPS * 4 * SEQ;
        System.out.printf(Locale.ROOT, "%nPIPELINE %d steps × 4 × %d tokens, GPT-2 small, r=8 c_attn%n", STEPS, SEQ);
        System.out.printf(Locale.ROOT, "  direct (core Trainer in a fresh JVM, as ./loraflow train): %s s → best %.2f s, %.0f tokens/s%n",
                Arrays.toString(direct), bestDirect, tokens / bestDirect);
        System.out.printf(Locale.ROOT, "  through Kafka (packaged trainer service):   %s s → best %.2f s, %.0f tokens/s%n",
                Arrays.toString(pipeline), bestPipeline, tokens / bestPipeline);
        System.out.printf(Locale.ROOT, "  end to end (model load, JIT warm-up, every step, checkpoints every %d): overhead %+.1f %%%n",
                CADENCE, 100 * (bestPipeline / bestDirect - 1));
        double steadyDirect = Arrays.stream(directSteady).min().orElseThrow();
        double steadyPipeline = Arrays.stream(pipelineSteady).min().orElseThrow();
        System.out.printf(Locale.ROOT, "  steady state, steps %d→%d: direct %s s, through Kafka %s s → training throughput %.0f vs %.0f tokens/s, overhead %+.1f %%%n",
                CADENCE, STEPS, Arrays.toString(directSteady), Arrays.toString(pipelineSteady),
                (STEPS - CADENCE) * 4 * SEQ / steadyDirect, (STEPS - CADENCE) * 4 * SEQ / steadyPipeline,
                100 * (steadyPipeline / steadyDirect - 1));
        checkpointCost();
    }

    /**
     * {@link #directSeconds} in a JVM of its own, as {@code ./loraflow train} is a process of its own: both
     * sides then start with cold JIT-compiled code, as the service does for a job's first steps.
     */
    private static double directSecondsInFreshJvm(Path out) throws Exception {
        Process process = new ProcessBuilder(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx4g",
                "-cp", System.getProperty("java.class.path"), Direct.class.getName(), root.toString(), out.toString())
                .redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(10, TimeUnit.MINUTES) && process.exitValue() == 0, output);
        String[] lines = output.strip().split("\n");
        String[] figures = lines[lines.length - 1].strip().split(" ");
        lastSteadySeconds = Double.parseDouble(figures[1]);
        return Double.parseDouble(figures[0]);
    }

    /** The direct run's own process: prints the seconds its work took. */
    public static final class Direct {
        public static void main(String[] args) throws Exception {
            root = Path.of(args[0]);
            TrainingJob job = TrainingJob.parse(JOB.formatted("pipeline", STEPS, CADENCE).getBytes(StandardCharsets.UTF_8));
            double total = directSeconds(job, examples(), Path.of(args[1]));
            System.out.println(total + " " + lastSteadySeconds);
        }
    }

    static List<Example> examples() {
        Rng rng = new Rng(9);
        List<Example> examples = new ArrayList<>();
        for (int e = 0; e < STEPS * 4; e++) {
            int[] ids = new int[SEQ];
            Arrays.setAll(ids, t -> (int) Math.floorMod(rng.nextLong(), MODEL.vocabSize()));
            examples.add(new Example(ids, ids));
        }
        return examples;
    }

    /** Loading the model, every step and the final save, as the CLI does them. */
    private static double directSeconds(TrainingJob job, List<Example> examples, Path out) throws Exception {
        long start = System.nanoTime();
        BaseModels.Base base = new BaseModels(root.resolve("models"), 1).get("bench");
        CausalLanguageModel model = base.model(job.loraConfig(base.config(), job.baseModel()), job.seed(),
                job.quantization());
        Trainer trainer = new Trainer(model, job.trainingSettings(), "bench");
        BatchSampler sampler = new BatchSampler(examples, job.batchSize(), job.seqLen(), base.padId(), job.seed(), false, 0);
        long atFirstCheckpoint = 0;
        while (!trainer.finished()) {
            trainer.step(sampler);
            if (trainer.completedSteps() % CADENCE == 0) {
                // as the service does at its cadence, so both sides pay for the same checkpoints
                trainer.save(out);
                if (trainer.completedSteps() == CADENCE) {
                    atFirstCheckpoint = System.nanoTime();
                }
            }
        }
        lastSteadySeconds = (System.nanoTime() - atFirstCheckpoint) / 1e9;
        return (System.nanoTime() - start) / 1e9;
    }

    /** Seconds from the first checkpoint (step {@value #CADENCE}) to the last: steady-state training. */
    static double lastSteadySeconds;

    /** From the job's definition reaching Kafka (its batches already there) to its final checkpoint event. */
    private static double pipelineSeconds(TrainingJob template, List<Example> examples, String jobId) throws Exception {
        TrainingJob job = TrainingJob.parse(JOB.formatted(jobId, STEPS, CADENCE).getBytes(StandardCharsets.UTF_8));
        ProcessBuilder builder = new ProcessBuilder(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx4g", "-jar",
                Path.of(System.getProperty("loraflow.trainer.jar", "../trainer/target/quarkus-app/quarkus-run.jar")).toAbsolutePath()
                        .toString())
                .redirectErrorStream(true).redirectOutput(root.resolve(jobId + ".log").toFile());
        builder.environment().put("KAFKA_BOOTSTRAP_SERVERS", KAFKA.broker().bootstrapServers());
        // A group of its own per run (below), which user trainer may not join: the benchmark's trainer signs in as admin.
        builder.environment().put("LORAFLOW_KAFKA_USERNAME", PlatformUsers.ADMIN);
        builder.environment().put("LORAFLOW_KAFKA_PASSWORD", KAFKA.broker().password(PlatformUsers.ADMIN));
        builder.environment().put("LORAFLOW_MODELS_ROOT", root.resolve("models").toString());
        builder.environment().put("LORAFLOW_STORE_ROOT", root.resolve("store").toString());
        builder.environment().put("QUARKUS_HTTP_PORT", "0");
        builder.environment().put("LORAFLOW_TRAINER_GROUP_ID", "bench-" + jobId);
        Process trainer = builder.start();
        try {
            Properties config = KAFKA.broker().clientProperties(PlatformUsers.PRODUCER);
            config.put(ProducerConfig.ACKS_CONFIG, "all");
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config, new ByteArraySerializer(),
                    new ByteArraySerializer())) {
                byte[] key = jobId.getBytes(StandardCharsets.UTF_8);
                // One record per micro-batch: every example reaches the trainer whatever the step count.
                for (int seq = 0; seq < examples.size() / 4; seq++) {
                    producer.send(new ProducerRecord<>("loraflow.training.batches", key,
                            TrainingBatch.encode(jobId, seq, examples.subList(seq * 4, seq * 4 + 4))));
                }
                producer.flush();
                awaitGroupMember("bench-" + jobId);  // the service is up and owns partitions; its model is not loaded yet
                long start = System.nanoTime();
                producer.send(new ProducerRecord<>("loraflow.training.jobs", key,
                        job.toJson().toString().getBytes(StandardCharsets.UTF_8))).get();
                CheckpointEvent last = awaitFinal(jobId);
                double seconds = (System.nanoTime() - start) / 1e9;
                pipelineSteadySeconds = (lastEventMillis - firstCadenceEventMillis) / 1e3;
                Path stored = new LocalArtifactStore(root.resolve("store")).open(URI.create(last.adapterUri()),
                        last.adapterSha256());
                assertArrayEquals(Files.readAllBytes(root.resolve("direct-0").resolve(PeftAdapter.WEIGHTS_FILE)),
                        Files.readAllBytes(stored.resolve(PeftAdapter.WEIGHTS_FILE)), "the same adapter both ways");
                return seconds;
            }
        } finally {
            trainer.destroy();
            trainer.waitFor(20, TimeUnit.SECONDS);
        }
    }

    private static void awaitGroupMember(String groupId) throws Exception {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        try (Admin admin = Admin.create(config)) {
            long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
            while (System.nanoTime() < deadline) {
                ConsumerGroupDescription group;
                try {
                    group = admin.describeConsumerGroups(List.of(groupId)).all().get().get(groupId);
                } catch (java.util.concurrent.ExecutionException notYet) {
                    Thread.sleep(200);
                    continue;
                }
                if (group.groupState() == GroupState.STABLE && group.members().stream()
                        .anyMatch(member -> !member.assignment().topicPartitions().isEmpty())) {
                    return;
                }
                Thread.sleep(100);
            }
        }
        throw new AssertionError("the trainer never joined group " + groupId);
    }

    /** Broker timestamps of the job's step-{@value #CADENCE} and final checkpoint events. */
    static long firstCadenceEventMillis;
    static long lastEventMillis;
    static double pipelineSteadySeconds;

    private static CheckpointEvent awaitFinal(String jobId) throws Exception {
        Properties config = KAFKA.broker().clientProperties(PlatformUsers.ADMIN);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, "bench-" + UUID.randomUUID());
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            consumer.subscribe(List.of("loraflow.adapter.checkpoints"));
            long deadline = System.nanoTime() + Duration.ofMinutes(10).toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(50))) {
                    CheckpointEvent event = CheckpointEvent.parse(record.value());
                    if (event.jobId().equals(jobId) && event.step() == CADENCE) {
                        firstCadenceEventMillis = record.timestamp();
                    }
                    if (event.jobId().equals(jobId) && event.last()) {
                        lastEventMillis = record.timestamp();
                        return event;
                    }
                }
            }
        }
        throw new AssertionError(jobId + " never finished");
    }

    /** Saving (adapter, moments, state) and storing the artifact of a GPT-2-small r = 8 c_attn adapter. */
    private static void checkpointCost() throws Exception {
        Gpt2Config small = new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5);
        CausalLanguageModel model = CausalLanguageModel.create(small, RandomModel.initialWeights(small, 1),
                LoraAdapterConfig.builder().r(8).loraAlpha(16).targetModules("c_attn").build(), 1);
        TrainingJob job = TrainingJob.parse(JOB.formatted("small", 100, CADENCE).getBytes(StandardCharsets.UTF_8));
        Trainer trainer = new Trainer(model, job.trainingSettings(), "bench");
        LocalArtifactStore store = new LocalArtifactStore(root.resolve("checkpoint-store"));
        double[] millis = new double[7];
        for (int i = 0; i < millis.length; i++) {
            long start = System.nanoTime();
            Path staging = Files.createTempDirectory(root, "checkpoint");
            trainer.save(staging);
            store.putDirectory(staging);
            millis[i] = (System.nanoTime() - start) / 1e6;
        }
        Arrays.sort(millis);
        System.out.printf(Locale.ROOT, "CHECKPOINT GPT-2 small, r=8 on c_attn (%d parameters): median %.1f ms (min %.1f, max %.1f)%n",
                model.trainableParameters().stream().mapToLong(p -> p.size()).sum(), millis[3], millis[0], millis[6]);
        assertTrue(millis[3] > 0);
    }
}
