package dev.loraflow.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.inference.EngineSettings;
import dev.loraflow.inference.ServedModel;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.platform.store.ArtifactStore;
import dev.loraflow.platform.store.LocalArtifactStore;
import dev.loraflow.platform.store.S3ArtifactStore;
import dev.loraflow.s3server.LocalS3Server;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;
import java.util.Random;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.regions.Region;

/**
 * The artifact stores' throughput on this machine (docs/operations.md): a directory holding one large file
 * ({@code --size-mb}, default 1024) and a config.json is
 * <ul>
 *   <li>copied with {@code cp -r} (the floor: no hashing, no fsync);</li>
 *   <li>stored in and opened from a {@link LocalArtifactStore} (hash, copy, fsync, rename; open hashes again);</li>
 *   <li>stored in an {@link S3ArtifactStore} on a local S3Proxy (hash, multipart upload of 64 MiB parts, 4 at a
 *       time) and opened with an empty read cache (ranged download, hashed on the way) and again (cache hit,
 *       hashed again);</li>
 * </ul>
 * and serving's cold load of an exported model ({@code --model-layers}, GPT-2 shape, random weights): a fresh
 * store opens the artifact and ONNX Runtime loads it, checks its SHA-256 and runs a token
 * ({@link ServedModel#load}), from the local store and from S3. Each measurement is the median of
 * {@code --rounds} (default 3), the variants alternating within a round so that they share the machine's load.
 * Prints one JSON line.
 */
public final class StoreThroughput {

    private static final long MIB = 1L << 20;

    private StoreThroughput() {}

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.STORE_THROUGHPUT.run(args, StoreThroughput::measure);
    }

    private static void measure(BenchmarkCommandLine.Arguments options) throws Exception {
        long size = (long) options.integer("--size-mb") * MIB;
        int rounds = options.integer("--rounds");
        int layers = options.integer("--model-layers");
        Path dir = Path.of(options.text("--dir"));
        if (Files.exists(dir)) {
            FileTrees.delete(dir);
        }
        Files.createDirectories(dir);
        Path source = Files.createDirectories(dir.resolve("source"));
        writeRandom(source.resolve("model.bin"), size);
        Files.writeString(source.resolve("config.json"), "{\"bench\": true}");

        ObjectNode line = new ObjectMapper().createObjectNode();
        line.put("size_mb", size / MIB);
        line.put("rounds", rounds);
        LocalS3Server.Options serverOptions = LocalS3Server.Options.defaults().withDataDirectory(dir.resolve("s3"));
        try (LocalS3Server server = LocalS3Server.start(serverOptions)) {
            double[][] times = new double[6][rounds];
            for (int round = 0; round < rounds; round++) {
                Path roundDir = Files.createDirectories(dir.resolve("round" + round));
                long start = System.nanoTime();
                run("cp", "-r", source.toString(), roundDir.resolve("cp").toString());
                times[0][round] = seconds(start);

                LocalArtifactStore local = new LocalArtifactStore(roundDir.resolve("local"));
                start = System.nanoTime();
                ArtifactStore.Artifact stored = local.putDirectory(source);
                times[1][round] = seconds(start);
                start = System.nanoTime();
                local.open(stored.uri(), stored.sha256());
                times[2][round] = seconds(start);

                try (S3ArtifactStore writer = s3(server, "round" + round, roundDir.resolve("cache-w"));
                     S3ArtifactStore reader = s3(server, "round" + round, roundDir.resolve("cache-r"))) {
                    start = System.nanoTime();
                    ArtifactStore.Artifact uploaded = writer.putDirectory(source);
                    times[3][round] = seconds(start);
                    start = System.nanoTime();
                    reader.open(uploaded.uri(), uploaded.sha256());
                    times[4][round] = seconds(start);
                    start = System.nanoTime();
                    reader.open(uploaded.uri(), uploaded.sha256());
                    times[5][round] = seconds(start);
                    line.put("s3_parts_uploaded_per_round", writer.transfers().partsUploaded());
                    line.put("s3_ranged_gets_per_round", reader.transfers().rangedGets());
                }
                FileTrees.delete(roundDir);
                FileTrees.delete(dir.resolve("s3").resolve(server.bucket()).resolve("round" + round));
            }
            String[] names = {"cp_s", "local_put_s", "local_open_s", "s3_put_s", "s3_open_cold_s", "s3_open_cached_s"};
            for (int i = 0; i < names.length; i++) {
                line.put(names[i], median(times[i]));
            }
            double mb = size / (double) MIB;
            line.put("cp_mb_per_s", mb / median(times[0]));
            line.put("local_put_mb_per_s", mb / median(times[1]));
            line.put("s3_put_mb_per_s", mb / median(times[3]));
            line.put("s3_open_cold_mb_per_s", mb / median(times[4]));
            line.put("s3_put_vs_local_put", median(times[3]) / median(times[1]));
            line.put("s3_open_cold_vs_local_open", median(times[4]) / median(times[2]));
            line.put("local_put_vs_cp", median(times[1]) / median(times[0]));
            FileTrees.delete(source);

            coldLoad(line, server, dir, layers, rounds);
        }
        System.out.println(line);
    }

    /** Serving's cold load of one exported model: a fresh store opens it, then ONNX Runtime loads and runs it. */
    private static void coldLoad(ObjectNode line, LocalS3Server server, Path dir, int layers, int rounds) throws Exception {
        Gpt2Config config = new Gpt2Config(32000, 512, 512, layers, 8, 2048, 1e-5);
        Path model = Files.createDirectories(dir.resolve("model"));
        RandomModel.write(config, 1, model);
        CausalLanguageModel loaded = CausalLanguageModel.load(model, null, 0);
        OnnxExporter.export(loaded, RandomModel.initialWeights(config, 1), OnnxExporter.Options.defaults(),
                new OnnxExporter.Provenance(null, null, null), model.resolve("model.onnx"));
        line.put("model_mb", FileTrees.size(model) / (double) MIB);
        ArtifactStore.Artifact local;
        ArtifactStore.Artifact remote;
        local = new LocalArtifactStore(dir.resolve("model-local")).putDirectory(model);
        try (S3ArtifactStore writer = s3(server, "model", dir.resolve("model-cache-w"))) {
            remote = writer.putDirectory(model);
        }
        double[][] times = new double[2][rounds];
        for (int round = 0; round < rounds; round++) {
            long start = System.nanoTime();
            load(new LocalArtifactStore(dir.resolve("model-local")), local);
            times[0][round] = seconds(start);
            try (S3ArtifactStore reader = s3(server, "model", dir.resolve("model-cache-" + round))) {
                start = System.nanoTime();
                load(reader, remote);
                times[1][round] = seconds(start);
            }
        }
        line.put("cold_load_local_s", median(times[0]));
        line.put("cold_load_s3_s", median(times[1]));
        line.put("cold_load_s3_vs_local", median(times[1]) / median(times[0]));
    }

    private static void load(ArtifactStore store, ArtifactStore.Artifact artifact) throws Exception {
        Path opened = store.open(artifact.uri(), artifact.sha256());
        ServedModel.load("bench", "1", opened.resolve("model.onnx"), null, EngineSettings.defaults()).retire();
    }

    private static S3ArtifactStore s3(LocalS3Server server, String prefix, Path cache) throws IOException {
        return new S3ArtifactStore(new S3ArtifactStore.Settings(server.bucket(), prefix, Optional.of(server.endpoint()),
                Region.US_EAST_1, true, StaticCredentialsProvider.create(AwsBasicCredentials.create(server.accessKey(),
                server.secretKey())), cache, Long.MAX_VALUE, 64 * MIB, 4));
    }

    private static void writeRandom(Path file, long size) throws IOException {
        byte[] block = new byte[(int) (16 * MIB)];
        Random random = new Random(42);
        try (OutputStream out = Files.newOutputStream(file)) {
            for (long written = 0; written < size; written += block.length) {
                random.nextBytes(block);
                out.write(block, 0, (int) Math.min(block.length, size - written));
            }
        }
    }

    private static void run(String... command) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(command).inheritIO().start();
        if (process.waitFor() != 0) {
            throw new IOException(String.join(" ", command) + " exited with " + process.exitValue());
        }
    }

    private static double seconds(long start) {
        return (System.nanoTime() - start) / 1e9;
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
