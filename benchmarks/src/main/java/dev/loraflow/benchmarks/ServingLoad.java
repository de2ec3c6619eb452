package dev.loraflow.benchmarks;

import ai.onnxruntime.OrtException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.onnx.OnnxExporter;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
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
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntFunction;
import java.util.stream.Stream;

/**
 * The serving figures of issues 6 and 14 in one run, on a GPT-2-small-shaped model (random weights)
 * exported merged with one r = 8 adapter and un-merged with {@code --adapters} (64), each served by the
 * packaged serving service in a child JVM on a free port, on {@code --device} cpu or cuda:
 * <ol>
 *   <li>overhead: a greedy generation (prefill + {@code --tokens} steps through the KV cache, batch 1)
 *       by ONNX Runtime directly in a loop against the same through {@code POST /v1/completions}, one
 *       client, non-streaming, alternating rounds; the server must give the loop's tokens;</li>
 *   <li>KV cache: the same generation recomputing the whole sequence each step (empty past) against it;</li>
 *   <li>continuous batching: waves of {@code --clients} streaming clients, one request each, against
 *       waves of one: tokens/s, p50/p99 latency and time to first token;</li>
 *   <li>adapters: the same waves with every client on its own adapter of the un-merged export (each wave
 *       on the next {@code --clients} of them, so all are used), against the merged model's;</li>
 *   <li>bare batching: the direct loop on {@code --clients} prompts as one batch against one prompt, and
 *       ONNX Runtime's profile of each: the bound of the continuous batching ratio.</li>
 * </ol>
 * The three kinds of wave take turns, {@code --waves} each. Prints a table, writes the figures as JSON to
 * {@code --out}. Both sides of every ratio run on the same (shared) machine in turns, so ratios are
 * steadier than absolute figures.
 */
public final class ServingLoad {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MODEL = "bench";
    private static final String API_KEY = "bench-key";

    private final BenchmarkCommandLine.Arguments options;
    private final Gpt2Config config;
    private final int promptLength;
    private final int tokens;
    private final int threads;
    /** cpu or cuda: where the server and the direct loop run the graph. */
    private final String device;
    private final int[] prompt;

    private ServingLoad(BenchmarkCommandLine.Arguments options) {
        this.options = options;
        this.config = new Gpt2Config(integer("--vocab"), integer("--context"), integer("--hidden"), integer("--layers"),
                integer("--heads"), 4 * integer("--hidden"), 1e-5);
        this.promptLength = integer("--prompt");
        this.tokens = integer("--tokens");
        this.threads = integer("--threads");
        this.device = options.text("--device");
        if (promptLength + tokens > config.maxPositions()) {
            throw new BenchmarkCommandLine.UsageException("--prompt " + promptLength + " + --tokens " + tokens
                    + " exceed the context " + config.maxPositions());
        }
        Rng rng = new Rng(4);
        this.prompt = new int[promptLength];
        Arrays.setAll(prompt, i -> (int) Math.floorMod(rng.nextLong(), config.vocabSize()));
    }

    public static void main(String[] args) throws Exception {
        BenchmarkCommandLine.SERVING_LOAD.run(args, arguments -> new ServingLoad(arguments).run());
    }

    private int integer(String option) {
        return options.integer(option);
    }

    private void run() throws Exception {
        Path dir = Path.of(options.text("--dir"));
        Path serverJar = Path.of(options.text("--server-jar"));
        if (!Files.isRegularFile(serverJar)) {
            throw new IllegalArgumentException(serverJar + ": no serving jar; build it with ./mvnw -pl serving -am package");
        }
        int adapterCount = integer("--adapters");
        int clients = integer("--clients");
        int waves = integer("--waves");
        ObjectNode report = JSON.createObjectNode();
        report.put("model", String.format("GPT-2 shape %d layers x %d hidden, %d heads, vocab %d, context %d, random weights",
                config.numLayers(), config.hiddenSize(), config.numHeads(), config.vocabSize(), config.maxPositions()));
        report.put("adapters", adapterCount + " PEFT adapters, r = " + integer("--rank") + ", on c_attn");
        report.put("prompt_tokens", promptLength);
        report.put("generated_tokens", tokens);
        report.put("threads", threads);
        report.put("device", device);
        report.put("cpus", Runtime.getRuntime().availableProcessors());
        report.put("load_average_start", loadAverage());

        deleteTree(dir);
        log("exporting the merged and un-merged models and " + adapterCount + " adapters to " + dir);
        Path merged = exportModels(dir, adapterCount);
        Path unmerged = dir.resolve("unmerged/model.onnx");

        ObjectNode overhead = report.putObject("overhead");
        ObjectNode cache = report.putObject("kv_cache");
        ObjectNode batching = report.putObject("batching");
        ObjectNode adapters = report.putObject("adapters_mix");
        ObjectNode bareBatching = report.putObject("bare_batching");
        try (Server server = Server.start(serverJar, merged, threads, device, dir.resolve("server-merged.log"));
             Server adapted = Server.start(serverJar, unmerged, threads, device, dir.resolve("server-unmerged.log"));
             OrtDecodeLoop direct = new OrtDecodeLoop(merged, config, OrtDecodeLoop.settings(threads, device), null)) {
            for (int i = 0; i < adapterCount; i++) {
                adapted.loadAdapter(adapterName(i), dir.resolve("adapters").resolve(adapterName(i)));
            }
            measureOverhead(server, direct, overhead);
            measureKvCache(direct, cache);
            measureBareBatching(direct, merged, clients, bareBatching);
            // One streaming request first on each, so that the timed ones do not pay for its first use (JIT, classes).
            server.complete(MODEL, prompt, tokens, true);
            adapted.complete(adapterName(0), prompt, tokens, true);
            // Waves of each kind in turn, so that the machine's load changes fall on all three alike.
            List<LoadResult> one = new ArrayList<>();
            List<LoadResult> many = new ArrayList<>();
            List<LoadResult> mixed = new ArrayList<>();
            for (int wave = 0; wave < waves; wave++) {
                log("wave " + (wave + 1) + " of " + waves);
                one.add(wave(server, 1, client -> MODEL));
                many.add(wave(server, clients, client -> MODEL));
                // Each wave's clients on other adapters than the last wave's: slots are rewritten as adapters rotate.
                int first = wave * clients;
                mixed.add(wave(adapted, clients, client -> adapterName((first + client) % adapterCount)));
            }
            LoadResult oneClient = LoadResult.of(one);
            LoadResult merged16 = LoadResult.of(many);
            LoadResult mixed16 = LoadResult.of(mixed);
            batching.set("one_client", oneClient.toJson());
            batching.set("clients", merged16.toJson());
            batching.put("concurrent_clients", clients);
            batching.put("throughput_ratio", merged16.tokensPerSecond() / oneClient.tokensPerSecond());
            batching.put("cpu_throughput_ratio", merged16.tokensPerCpuSecond() / oneClient.tokensPerCpuSecond());
            batching.put("goal", ">= 5");
            adapters.set("merged", merged16.toJson());
            adapters.set("mixed", mixed16.toJson());
            adapters.put("concurrent_clients", clients);
            adapters.put("adapter_count", adapterCount);
            adapters.put("throughput_ratio", mixed16.tokensPerSecond() / merged16.tokensPerSecond());
            adapters.put("cpu_throughput_ratio", mixed16.tokensPerCpuSecond() / merged16.tokensPerCpuSecond());
            adapters.put("goal", ">= 0.7");
        }
        report.put("load_average_end", loadAverage());
        Path out = Path.of(options.text("--out"));
        Files.createDirectories(out.toAbsolutePath().getParent());
        JSON.writerWithDefaultPrettyPrinter().writeValue(out.toFile(), report);
        System.out.println(table(report));
    }

    private static String adapterName(int i) {
        return "adapter-" + i;
    }

    /**
     * One adapted model, its adapter re-drawn per PEFT directory; the last drawn (adapter 0) is the one
     * merged into merged/model.onnx. The un-merged export has the same graph with LoRA inputs.
     */
    private Path exportModels(Path dir, int adapterCount) throws IOException {
        Map<String, float[]> weights = RandomModel.initialWeights(config, 1);
        int rank = integer("--rank");
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(rank).loraAlpha(2 * rank).targetModules("c_attn").build();
        CausalLanguageModel model = CausalLanguageModel.create(config, weights, lora, 2);
        for (int i = adapterCount - 1; i >= 0; i--) {
            Rng rng = new Rng(100 + i);
            for (LoRALinear module : model.adaptedModules().values()) {
                float[] a = module.loraA().value();
                for (int j = 0; j < a.length; j++) {
                    a[j] = rng.nextUniform(0.05f);
                }
                float[] b = module.loraB().value();
                for (int j = 0; j < b.length; j++) {
                    b[j] = rng.nextUniform(0.05f);
                }
            }
            model.toPeftAdapter().write(dir.resolve("adapters").resolve(adapterName(i)), DType.F32);
        }
        OnnxExporter.Provenance provenance = new OnnxExporter.Provenance(null, null, null);
        Path merged = dir.resolve("merged/model.onnx");
        Path unmerged = dir.resolve("unmerged/model.onnx");
        for (Path onnx : List.of(merged, unmerged)) {
            Files.createDirectories(onnx.getParent());
            Files.writeString(onnx.resolveSibling("config.json"), config.toJson(), StandardCharsets.UTF_8);
        }
        OnnxExporter.export(model, weights, OnnxExporter.Options.defaults(), provenance, merged);
        OnnxExporter.export(model, weights, OnnxExporter.Options.defaults().withUnmerged(true), provenance, unmerged);
        return merged;
    }

    /** a. Direct loop against the server, rounds alternating; medians per token. */
    private void measureOverhead(Server server, OrtDecodeLoop direct, ObjectNode out) throws Exception {
        int rounds = integer("--rounds");
        log("overhead: " + rounds + " rounds of " + tokens + " tokens, direct and through the server");
        direct.generate(prompt, tokens, new long[tokens]);
        server.complete(MODEL, prompt, tokens, false);
        double[] directMs = new double[rounds];
        double[] serverMs = new double[rounds];
        double[] directCpuMs = new double[rounds];
        double[] serverCpuMs = new double[rounds];
        boolean same = true;
        for (int round = 0; round < rounds; round++) {
            double cpu = ownCpuMs();
            long start = System.nanoTime();
            int[] expected = direct.generate(prompt, tokens, new long[tokens]);
            directMs[round] = (System.nanoTime() - start) / 1e6;
            directCpuMs[round] = ownCpuMs() - cpu;
            cpu = server.cpuMs();
            start = System.nanoTime();
            RequestResult served = server.complete(MODEL, prompt, tokens, false);
            serverMs[round] = (System.nanoTime() - start) / 1e6;
            serverCpuMs[round] = server.cpuMs() - cpu;
            same &= Arrays.equals(expected, served.tokens());
            log(String.format("  round %d: direct %.2f, server %.2f ms/token (CPU %.2f, %.2f)", round + 1,
                    directMs[round] / tokens, serverMs[round] / tokens, directCpuMs[round] / tokens,
                    serverCpuMs[round] / tokens));
        }
        double directPerToken = median(directMs) / tokens;
        double serverPerToken = median(serverMs) / tokens;
        out.put("direct_ms_per_token", directPerToken);
        out.put("server_ms_per_token", serverPerToken);
        out.put("overhead_percent", 100 * (serverPerToken / directPerToken - 1));
        out.put("goal_percent", "<= 5");
        // CPU time of each process: what waiting for a shared CPU adds to the wall clock stays out of it.
        out.put("direct_cpu_ms_per_token", median(directCpuMs) / tokens);
        out.put("server_cpu_ms_per_token", median(serverCpuMs) / tokens);
        out.put("cpu_overhead_percent", 100 * (median(serverCpuMs) / median(directCpuMs) - 1));
        out.put("same_tokens", same);
        out.set("direct_ms", JSON.valueToTree(directMs));
        out.set("server_ms", JSON.valueToTree(serverMs));
        out.set("direct_cpu_ms", JSON.valueToTree(directCpuMs));
        out.set("server_cpu_ms", JSON.valueToTree(serverCpuMs));
    }

    /** b. The same generation recomputing the whole sequence each step, once, against the cached one. */
    private void measureKvCache(OrtDecodeLoop direct, ObjectNode out) throws OrtException {
        log("KV cache: " + tokens + " tokens without the cache");
        long start = System.nanoTime();
        int[] cached = direct.generate(prompt, tokens, new long[tokens]);
        double cachedMs = (System.nanoTime() - start) / 1e6;
        start = System.nanoTime();
        int[] uncached = direct.generateWithoutCache(prompt, tokens);
        double uncachedMs = (System.nanoTime() - start) / 1e6;
        int agreeing = 0;
        while (agreeing < tokens && cached[agreeing] == uncached[agreeing]) {
            agreeing++;
        }
        out.put("with_cache_ms", cachedMs);
        out.put("without_cache_ms", uncachedMs);
        out.put("speedup", uncachedMs / cachedMs);
        out.put("tokens_agreeing_before_first_difference", agreeing);
    }

    /**
     * e. ONNX Runtime alone decoding {@code clients} prompts as one batch against one prompt (the same loop as a.,
     * rows in a batch without padding), rounds alternating: what batching can give before the engine takes its
     * share, the bound of c.'s ratio. Then one more generation of each on {@code model} (the direct loop's graph) with
     * ONNX Runtime's profiler: per step, the time of each operator type.
     */
    private void measureBareBatching(OrtDecodeLoop direct, Path model, int clients, ObjectNode out) throws Exception {
        int rounds = integer("--rounds");
        log("bare ONNX Runtime batching: " + rounds + " rounds of " + tokens + " tokens at batch 1 and " + clients);
        int[][] one = {prompt};
        int[][] batch = new int[clients][];
        for (int b = 0; b < clients; b++) {
            batch[b] = prompt.clone();
            batch[b][0] = (prompt[0] + b) % config.vocabSize();
        }
        double[][] wallMs = new double[2][rounds];
        double[][] cpuMs = new double[2][rounds];
        for (int round = 0; round < rounds; round++) {
            for (int kind = 0; kind < 2; kind++) {
                double cpu = ownCpuMs();
                long start = System.nanoTime();
                direct.generate(kind == 0 ? one : batch, tokens, new long[tokens]);
                wallMs[kind][round] = (System.nanoTime() - start) / 1e6;
                cpuMs[kind][round] = ownCpuMs() - cpu;
            }
            log(String.format("  round %d: batch 1 %.2f ms/step (CPU %.2f), batch %d %.2f ms/step (CPU %.2f)", round + 1,
                    wallMs[0][round] / tokens, cpuMs[0][round] / tokens, clients, wallMs[1][round] / tokens,
                    cpuMs[1][round] / tokens));
        }
        out.put("batch", clients);
        out.put("one_ms_per_step", median(wallMs[0]) / tokens);
        out.put("batch_ms_per_step", median(wallMs[1]) / tokens);
        out.put("one_cpu_ms_per_step", median(cpuMs[0]) / tokens);
        out.put("batch_cpu_ms_per_step", median(cpuMs[1]) / tokens);
        out.put("throughput_ratio", clients * median(wallMs[0]) / median(wallMs[1]));
        out.put("cpu_throughput_ratio", clients * median(cpuMs[0]) / median(cpuMs[1]));
        out.set("wall_ms", JSON.valueToTree(wallMs));
        out.set("cpu_ms", JSON.valueToTree(cpuMs));
        Path profile = Path.of(options.text("--dir")).resolve("ort-profile");
        for (int[][] prompts : List.of(one, batch)) {
            try (OrtDecodeLoop profiled = new OrtDecodeLoop(model, config, OrtDecodeLoop.settings(threads, device), profile)) {
                profiled.generate(prompts, tokens, new long[tokens]);
                out.set(prompts == one ? "profile_one_ms_per_step_by_op" : "profile_batch_ms_per_step_by_op",
                        JSON.valueToTree(OrtDecodeLoop.perRun(profiled.endProfiling(), tokens)));
            }
        }
    }

    /** c/d. One streaming request from each of {@code clients} clients at once; the wave ends with the last. */
    private LoadResult wave(Server server, int clients, IntFunction<String> modelOf) throws Exception {
        log("  " + clients + " clients x 1 streaming request of " + tokens + " tokens (" + modelOf.apply(0)
                + (clients > 1 ? ", " + modelOf.apply(1) + ", ..." : "") + ")");
        List<RequestResult> results = Collections.synchronizedList(new ArrayList<>());
        double cpu = server.cpuMs();
        long start = System.nanoTime();
        try (ExecutorService pool = Executors.newFixedThreadPool(clients)) {
            List<Future<?>> running = new ArrayList<>();
            for (int client = 0; client < clients; client++) {
                String model = modelOf.apply(client);
                running.add(pool.submit(() -> results.add(server.complete(model, prompt, tokens, true))));
            }
            for (Future<?> future : running) {
                future.get();
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double cpuSeconds = (server.cpuMs() - cpu) / 1e3;
        long generated = results.stream().mapToLong(result -> result.tokens().length).sum();
        return new LoadResult(clients, results.size(), generated, seconds, cpuSeconds,
                results.stream().mapToDouble(RequestResult::latencyMs).toArray(),
                results.stream().mapToDouble(RequestResult::firstTokenMs).toArray());
    }

    record RequestResult(int[] tokens, double latencyMs, double firstTokenMs) {}

    /** @param cpuSeconds the server process's CPU time over the run */
    record LoadResult(int clients, int requests, long tokens, double seconds, double cpuSeconds, double[] latencyMs,
                      double[] firstTokenMs) {

        double tokensPerSecond() {
            return tokens / seconds;
        }

        double tokensPerCpuSecond() {
            return tokens / cpuSeconds;
        }

        ObjectNode toJson() {
            ObjectNode node = JSON.createObjectNode();
            node.put("clients", clients);
            node.put("requests", requests);
            node.put("tokens", tokens);
            node.put("seconds", seconds);
            node.put("tokens_per_second", tokensPerSecond());
            node.put("server_cpu_seconds", cpuSeconds);
            node.put("tokens_per_server_cpu_second", tokensPerCpuSecond());
            node.put("latency_p50_ms", percentile(latencyMs, 50));
            node.put("latency_p99_ms", percentile(latencyMs, 99));
            node.put("ttft_p50_ms", percentile(firstTokenMs, 50));
            node.put("ttft_p99_ms", percentile(firstTokenMs, 99));
            node.set("latency_ms", JSON.valueToTree(latencyMs));
            node.set("ttft_ms", JSON.valueToTree(firstTokenMs));
            return node;
        }

        /** Waves of the same clients together: their tokens over their time. */
        static LoadResult of(List<LoadResult> waves) {
            return new LoadResult(waves.getFirst().clients(), waves.stream().mapToInt(LoadResult::requests).sum(),
                    waves.stream().mapToLong(LoadResult::tokens).sum(), waves.stream().mapToDouble(LoadResult::seconds).sum(),
                    waves.stream().mapToDouble(LoadResult::cpuSeconds).sum(),
                    waves.stream().flatMapToDouble(wave -> Arrays.stream(wave.latencyMs())).toArray(),
                    waves.stream().flatMapToDouble(wave -> Arrays.stream(wave.firstTokenMs())).toArray());
        }
    }

    /** The packaged serving service in a child JVM, on a free port, serving one model. */
    private static final class Server implements AutoCloseable {
        private final Process process;
        private final URI base;
        private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();

        private Server(Process process, int port) {
            this.process = process;
            this.base = URI.create("http://127.0.0.1:" + port);
        }

        /** @param device cpu or cuda; with cuda a server whose model runs elsewhere is an error */
        static Server start(Path jar, Path model, int threads, String device, Path log) throws Exception {
            int port;
            try (ServerSocket socket = new ServerSocket(0)) {
                port = socket.getLocalPort();
            }
            Path java = Path.of(System.getProperty("java.home"), "bin", "java");
            Process process = new ProcessBuilder(java.toString(), "--add-modules", "jdk.incubator.vector",
                    "--enable-native-access=ALL-UNNAMED", "-Dquarkus.http.port=" + port, "-Dquarkus.http.host=127.0.0.1",
                    // Two servers run at once: gRPC, unused here, on a free port each.
                    "-Dquarkus.grpc.server.port=0", "-Dquarkus.grpc.server.host=127.0.0.1",
                    "-Dloraflow.serving.model.name=" + MODEL, "-Dloraflow.serving.model.path=" + model.toAbsolutePath(),
                    "-Dloraflow.serving.intra-op-threads=" + threads, "-Dloraflow.serving.request-timeout=PT30M",
                    "-Dloraflow.serving.provider=" + device,
                    "-Dloraflow.api-keys=" + API_KEY,
                    // The adapters are read from the benchmark's directory, beside the models.
                    "-Dloraflow.serving.admin-roots=" + model.toAbsolutePath().getParent().getParent(),
                    "-jar", jar.toAbsolutePath().toString())
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            Server server = new Server(process, port);
            try {
                String provider = server.awaitReady(log);
                if (device.equals("cuda") && !provider.startsWith("cuda")) {
                    throw new IllegalStateException("--device cuda, but the server runs the model on " + provider
                            + " (no GPU, or a serving jar built without -Pcuda); see " + log);
                }
            } catch (Exception e) {
                server.close();
                throw e;
            }
            return server;
        }

        /** Waits for readiness; the provider the model runs on ("cpu", "cuda:0"), as the health check tells it. */
        private String awaitReady(Path log) throws Exception {
            long deadline = System.nanoTime() + Duration.ofMinutes(10).toNanos();
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    throw new IllegalStateException("the server exited with " + process.exitValue() + "; see " + log);
                }
                try {
                    HttpResponse<String> response = http.send(HttpRequest.newBuilder(base.resolve("/q/health/ready"))
                            .GET().build(), HttpResponse.BodyHandlers.ofString());
                    if (response.statusCode() == 200) {
                        for (JsonNode check : JSON.readTree(response.body()).path("checks")) {
                            if (check.path("data").has("provider")) {
                                return check.path("data").path("provider").asText();
                            }
                        }
                        throw new IllegalStateException("the server's readiness names no provider: " + response.body());
                    }
                } catch (IOException e) {
                    // Not listening yet.
                }
                Thread.sleep(250);
            }
            throw new IllegalStateException("the server was not ready within 10 minutes; see " + log);
        }

        /** The server process's CPU time so far. */
        double cpuMs() {
            return process.toHandle().info().totalCpuDuration().map(cpu -> cpu.toNanos() / 1e6)
                    .orElseThrow(() -> new IllegalStateException("this system does not tell a process's CPU time"));
        }

        void loadAdapter(String name, Path directory) throws Exception {
            String body = JSON.createObjectNode().put("name", name).put("path", directory.toAbsolutePath().toString())
                    .toString();
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(base.resolve("/admin/adapters"))
                    .header("X-API-Key", API_KEY).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) {
                throw new IllegalStateException("loading adapter " + name + ": " + response.statusCode() + " "
                        + response.body());
            }
        }

        /** A greedy completion of exactly {@code maxTokens} tokens (no stop ids: the model has no tokenizer). */
        RequestResult complete(String model, int[] prompt, int maxTokens, boolean stream) throws Exception {
            ObjectNode body = JSON.createObjectNode().put("model", model).put("max_tokens", maxTokens)
                    .put("temperature", 0).put("stream", stream);
            ArrayNode ids = body.putArray("prompt");
            for (int id : prompt) {
                ids.add(id);
            }
            HttpRequest request = HttpRequest.newBuilder(base.resolve("/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString()))
                    .build();
            long start = System.nanoTime();
            if (!stream) {
                HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
                double latency = (System.nanoTime() - start) / 1e6;
                JsonNode root = check(response.statusCode(), response.body());
                int[] generated = JSON.convertValue(root.path("choices").path(0).path("token_ids"), int[].class);
                return new RequestResult(generated, latency, Double.NaN);
            }
            HttpResponse<Stream<String>> response = http.send(request, HttpResponse.BodyHandlers.ofLines());
            if (response.statusCode() != 200) {
                check(response.statusCode(), String.join("\n", response.body().toList()));
            }
            int[] generated = new int[maxTokens];
            int count = 0;
            double firstToken = Double.NaN;
            try (Stream<String> lines = response.body()) {
                for (String line : (Iterable<String>) lines::iterator) {
                    if (!line.startsWith("data: {")) {
                        continue;
                    }
                    JsonNode chunk = JSON.readTree(line.substring("data: ".length()));
                    if (chunk.has("error")) {
                        throw new IllegalStateException("the stream failed: " + chunk);
                    }
                    for (JsonNode id : chunk.path("choices").path(0).path("token_ids")) {
                        if (count == 0) {
                            firstToken = (System.nanoTime() - start) / 1e6;
                        }
                        generated[count++] = id.intValue();
                    }
                }
            }
            double latency = (System.nanoTime() - start) / 1e6;
            return new RequestResult(Arrays.copyOf(generated, count), latency, firstToken);
        }

        private static JsonNode check(int status, String body) throws IOException {
            if (status != 200) {
                throw new IllegalStateException("the server answered " + status + ": " + body);
            }
            return JSON.readTree(body);
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
        }
    }

    private static String table(JsonNode report) {
        JsonNode overhead = report.get("overhead");
        JsonNode cache = report.get("kv_cache");
        JsonNode batching = report.get("batching");
        JsonNode adapters = report.get("adapters_mix");
        StringBuilder table = new StringBuilder();
        table.append(report.get("model").textValue()).append("; ").append(report.get("adapters").textValue())
                .append("; prompt ").append(report.get("prompt_tokens")).append(", ")
                .append(report.get("generated_tokens")).append(" tokens greedy; ").append(report.get("threads"))
                .append(" ORT threads on ").append(report.get("cpus")).append(" CPUs; load average ")
                .append(report.get("load_average_start").textValue()).append(" -> ")
                .append(report.get("load_average_end").textValue()).append('\n');
        row(table, "measure", "figures", "ratio (goal)");
        row(table, "a. server vs direct ORT loop, batch 1",
                String.format("%.2f vs %.2f ms/token, same tokens: %s", overhead.get("server_ms_per_token").doubleValue(),
                        overhead.get("direct_ms_per_token").doubleValue(), overhead.get("same_tokens").booleanValue()),
                String.format("%+.1f %% (<= 5 %%)", overhead.get("overhead_percent").doubleValue()));
        row(table, "   the same in CPU time per token",
                String.format("%.2f vs %.2f ms/token", overhead.get("server_cpu_ms_per_token").doubleValue(),
                        overhead.get("direct_cpu_ms_per_token").doubleValue()),
                String.format("%+.1f %%", overhead.get("cpu_overhead_percent").doubleValue()));
        row(table, "b. decode with KV cache vs without",
                String.format("%.1f vs %.1f s", cache.get("with_cache_ms").doubleValue() / 1000,
                        cache.get("without_cache_ms").doubleValue() / 1000),
                String.format("%.1fx faster", cache.get("speedup").doubleValue()));
        JsonNode one = batching.get("one_client");
        JsonNode many = batching.get("clients");
        versus(table, "c. " + batching.get("concurrent_clients") + " clients vs 1 (tokens/s)", many, one,
                "tokens_per_second", "tokens/s", String.format("%.2fx (>= 5x)", batching.get("throughput_ratio").doubleValue()));
        versus(table, "   the same per server CPU second", many, one, "tokens_per_server_cpu_second", "tokens/CPU-s",
                String.format("%.2fx", batching.get("cpu_throughput_ratio").doubleValue()));
        for (JsonNode run : List.of(one, many)) {
            table.append(String.format("%-44s %s%n", "   " + run.get("clients") + " client(s): latency / TTFT p50 p99",
                    String.format("%.0f / %.0f ms, TTFT %.0f / %.0f ms (%d requests)",
                            run.get("latency_p50_ms").doubleValue(), run.get("latency_p99_ms").doubleValue(),
                            run.get("ttft_p50_ms").doubleValue(), run.get("ttft_p99_ms").doubleValue(),
                            run.get("requests").intValue())));
        }
        JsonNode mixed = adapters.get("mixed");
        versus(table, "d. " + adapters.get("adapter_count") + " adapters mixed vs merged, " + adapters.get("concurrent_clients")
                + " clients", mixed, adapters.get("merged"), "tokens_per_second", "tokens/s",
                String.format("%.0f %% (>= 70 %%)", 100 * adapters.get("throughput_ratio").doubleValue()));
        versus(table, "   the same per server CPU second", mixed, adapters.get("merged"), "tokens_per_server_cpu_second",
                "tokens/CPU-s", String.format("%.0f %%", 100 * adapters.get("cpu_throughput_ratio").doubleValue()));
        table.append(String.format("%-44s %s%n", "   mixed: latency / TTFT p50 p99",
                String.format("%.0f / %.0f ms, TTFT %.0f / %.0f ms", mixed.get("latency_p50_ms").doubleValue(),
                        mixed.get("latency_p99_ms").doubleValue(), mixed.get("ttft_p50_ms").doubleValue(),
                        mixed.get("ttft_p99_ms").doubleValue())));
        JsonNode bare = report.get("bare_batching");
        row(table, "e. bare ORT, batch " + bare.get("batch") + " vs 1 (tokens/s)", String.format("%.1f vs %.1f ms/step",
                bare.get("batch_ms_per_step").doubleValue(), bare.get("one_ms_per_step").doubleValue()),
                String.format("%.2fx (bounds c.)", bare.get("throughput_ratio").doubleValue()));
        row(table, "   the same per CPU second (driver process)", String.format("%.1f vs %.1f CPU ms/step",
                bare.get("batch_cpu_ms_per_step").doubleValue(), bare.get("one_cpu_ms_per_step").doubleValue()),
                String.format("%.2fx", bare.get("cpu_throughput_ratio").doubleValue()));
        for (String batch : List.of("batch", "one")) {
            StringBuilder ops = new StringBuilder();
            bare.get("profile_" + batch + "_ms_per_step_by_op").properties().stream().limit(6)
                    .forEach(op -> ops.append(ops.isEmpty() ? "" : ", ").append(op.getKey()).append(' ')
                            .append(op.getValue().asText()));
            table.append(String.format("%-44s %s%n", "   profile, ms/step, batch " + (batch.equals("one") ? 1 : bare.get("batch")),
                    ops));
        }
        return table.toString();
    }

    /** A line comparing {@code field} of two runs ({@code unit}), with their ratio. */
    private static void versus(StringBuilder table, String measure, JsonNode first, JsonNode second, String field,
                               String unit, String ratio) {
        row(table, measure, String.format("%.1f vs %.1f %s", first.get(field).doubleValue(), second.get(field).doubleValue(),
                unit), ratio);
    }

    /** One line of the table: the measure, its figures and their ratio. */
    private static void row(StringBuilder table, String measure, String figures, String ratio) {
        table.append(String.format("%-44s %-44s %s%n", measure, figures, ratio));
    }

    /** Nearest-rank percentile. */
    private static double percentile(double[] values, double p) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(p / 100 * sorted.length);
        return sorted[Math.max(rank, 1) - 1];
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted.length % 2 == 1 ? sorted[sorted.length / 2]
                : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    }

    private static double ownCpuMs() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime()
                / 1e6;
    }

    private static String loadAverage() {
        try {
            return String.join(" ", Arrays.copyOf(Files.readString(Path.of("/proc/loadavg")).split(" "), 3));
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static void log(String message) {
        System.err.println("[serving-bench] " + message);
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path path : paths.sorted(Collections.reverseOrder()).toList()) {
                Files.delete(path);
            }
        }
    }
}
