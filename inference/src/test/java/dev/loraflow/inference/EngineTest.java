package dev.loraflow.inference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.generate.GenerationResult;
import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.random.Rng;
import dev.loraflow.core.text.ByteLevelTokenizerJson;
import dev.loraflow.onnx.OnnxExporter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The engine's generations against core's Java Generator on the model the graph was exported from. */
class EngineTest {

    /**
     * The execution provider the tests run on: -Dloraflow.test.provider=cuda (bench/gpu-check.sh) runs them all
     * on the GPU, and {@link #runsOnTheRequestedProvider} fails if ONNX Runtime fell back to the CPU.
     */
    private static final EngineSettings.Provider PROVIDER =
            EngineSettings.Provider.parse(System.getProperty("loraflow.test.provider", "cpu"));
    private static final EngineSettings ONE_THREAD = new EngineSettings(PROVIDER, 0, EngineSettings.OptimizationLevel.ALL,
            1, 0, true, 16, 64);

    @TempDir
    Path dir;

    static Stream<Arguments> architectures() {
        return Stream.concat(Stream.of(Arguments.of(TinyModels.GPT2.modelType(), TinyModels.GPT2),
                Arguments.of(TinyModels.LLAMA.modelType(), TinyModels.LLAMA)),
                TinyModels.FAMILIES.stream().map(config -> Arguments.of(
                        config.modelType() + (config.ropeScaling() != null ? "3" : ""), config)));
    }

    /** Listens for one generation; its tokens as streamed and the completion. */
    static class Collector implements GenerationListener {
        final CompletableFuture<Completion> done = new CompletableFuture<>();
        final List<Integer> streamed = new ArrayList<>();
        final StringBuilder text = new StringBuilder();

        @Override
        public void onToken(int token, String delta) {
            streamed.add(token);
            text.append(delta);
        }

        @Override
        public void onComplete(Completion completion) {
            done.complete(completion);
        }

        @Override
        public void onError(RuntimeException error) {
            done.completeExceptionally(error);
        }

        Completion get() throws Exception {
            return done.get(60, TimeUnit.SECONDS);
        }
    }

    private static int[] prompt(long seed, int length) {
        Rng rng = new Rng(seed);
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) {
            ids[i] = (int) Math.floorMod(rng.nextLong(), ByteLevelTokenizerJson.END_OF_TEXT_ID);
        }
        return ids;
    }

    private static Collector submit(Engine engine, ServedModel model, int[] prompt, SamplingSettings sampling,
                                    List<String> stops, String adapter) {
        assertTrue(model.tryAcquire());
        Collector collector = new Collector();
        engine.submit(model, new GenerationRequest(prompt, sampling, stops, adapter), collector);
        return collector;
    }

    private static void assertSameAsGenerator(CausalLanguageModel java, int[] prompt, SamplingSettings sampling,
                                              Collector collector) throws Exception {
        GenerationResult expected = Generator.generate(java, prompt, sampling);
        Completion actual = collector.get();
        assertArrayEquals(expected.tokens(), actual.tokens(), "prompt of " + prompt.length + " tokens, " + sampling);
        assertEquals(expected.finishReason(), actual.finishReason());
        assertEquals(prompt.length, actual.promptTokens());
        assertEquals(List.of(actual.tokens().length), List.of(collector.streamed.size()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void greedyOutputEqualsTheJavaGeneratorOneRequestAtATime(String arch, ModelConfig config) throws Exception {
        CausalLanguageModel java = TinyModels.model(config, 1);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 1), dir);
        try (Engine engine = new Engine(ONE_THREAD.withBatching(1, 8))) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            for (int length : new int[] {1, 5, 17}) {
                int[] prompt = prompt(length, length);
                SamplingSettings greedy = SamplingSettings.greedy(20, Set.of());
                assertSameAsGenerator(java, prompt, greedy, submit(engine, model, prompt, greedy, List.of(), null));
            }
            // Generation stops when the prompt and the new tokens fill the context, as the Generator's does.
            int[] nearlyFull = prompt(3, config.maxPositions() - 4);
            SamplingSettings many = SamplingSettings.greedy(50, Set.of());
            Collector collector = submit(engine, model, nearlyFull, many, List.of(), null);
            assertSameAsGenerator(java, nearlyFull, many, collector);
            assertEquals(4, collector.get().tokens().length);
            model.retire();
            assertTrue(model.isClosed());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void concurrentRequestsJoiningAndLeavingTheBatchEachEqualTheJavaGenerator(String arch, ModelConfig config)
            throws Exception {
        CausalLanguageModel java = TinyModels.model(config, 2);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 2), dir);
        List<Integer> batchSizes = new java.util.concurrent.CopyOnWriteArrayList<>();
        // Four at a time from a queue of twelve: requests of different lengths leave and others join mid-way.
        try (Engine engine = new Engine(ONE_THREAD.withBatching(4, 12))) {
            // The engine's thread waits at its first step until all ten are queued, whatever the machine's load.
            CountDownLatch queued = new CountDownLatch(1);
            recordStepsHeldUntil(engine, batchSizes, queued);
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            List<int[]> prompts = new ArrayList<>();
            List<SamplingSettings> settings = new ArrayList<>();
            List<Collector> collectors = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                int[] prompt = prompt(100 + i, 1 + (7 * i) % 23);
                SamplingSettings sampling = i % 3 == 2
                        ? new SamplingSettings(3 + 5 * i % 17, 0.8, 40, 0.9, 1000 + i, Set.of())
                        : SamplingSettings.greedy(3 + (5 * i) % 17, Set.of());
                prompts.add(prompt);
                settings.add(sampling);
                collectors.add(submit(engine, model, prompt, sampling, List.of(), null));
            }
            queued.countDown();
            for (int i = 0; i < prompts.size(); i++) {
                assertSameAsGenerator(java, prompts.get(i), settings.get(i), collectors.get(i));
            }
            assertTrue(batchSizes.stream().anyMatch(size -> size > 1), "requests shared steps: " + batchSizes);
            assertTrue(batchSizes.stream().allMatch(size -> size <= 4), "batch limit kept: " + batchSizes);
            model.retire();
            assertTrue(model.isClosed(), "every lease was returned");
        }
    }

    /**
     * One request joins at every step (submitted from the step observer) while short ones leave: the
     * batch's cache rows are appended, moved into leavers' places and re-strided when a longer joiner grows the
     * buffers; prompts beyond the 4-token chunk are prefilled in chunks between steps. Every answer stays the Java Generator's, greedy and sampled.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void requestsJoiningAndLeavingEveryStepEachEqualTheJavaGenerator(String arch, ModelConfig config) throws Exception {
        CausalLanguageModel java = TinyModels.model(config, 3);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 3), dir);
        EngineSettings settings = ONE_THREAD.withBatching(6, 64).withKvCache(EngineSettings.DEFAULT_KV_CACHE_BYTES, 4);
        try (Engine engine = new Engine(settings)) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, settings);
            List<int[]> prompts = new ArrayList<>();
            List<SamplingSettings> samplings = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                // A long first one (40 slots of a 64 context) while the others come and go.
                int length = i == 0 ? 30 : 1 + (7 * i) % 13;
                int tokens = i == 0 ? 10 : 1 + i % 5;
                prompts.add(prompt(300 + i, length));
                samplings.add(i % 4 == 3 ? new SamplingSettings(tokens, 0.9, 20, 0.95, 77 + i, Set.of())
                        : SamplingSettings.greedy(tokens, Set.of()));
            }
            List<Collector> collectors = new java.util.concurrent.CopyOnWriteArrayList<>();
            List<Integer> batchSizes = new java.util.concurrent.CopyOnWriteArrayList<>();
            // The next request, once: from the engine's thread at each step, or from here when the batch ran empty.
            Runnable submitNext = () -> {
                synchronized (collectors) {
                    int next = collectors.size();
                    if (next < prompts.size()) {
                        collectors.add(submit(engine, model, prompts.get(next), samplings.get(next), List.of(), null));
                    }
                }
            };
            engine.onStep(size -> {
                batchSizes.add(size);
                submitNext.run();
            });
            submitNext.run();
            for (int i = 0; i < prompts.size(); i++) {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (collectors.size() <= i) {
                    assertTrue(System.nanoTime() < deadline, "request " + i + " submitted within 60 s");
                    if (engine.activeSequences() + engine.queueDepth() == 0) {
                        submitNext.run();
                    }
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
                }
                assertSameAsGenerator(java, prompts.get(i), samplings.get(i), collectors.get(i));
            }
            assertTrue(batchSizes.stream().distinct().count() > 2, "the batch grew and shrank: " + batchSizes);
            model.retire();
            assertTrue(model.isClosed(), "every lease was returned");
        }
    }

    /**
     * Requests reserve their prompt and new tokens' KV cache: one beyond the budget while others run is
     * refused with KvCacheFullException (nothing of it runs, its lease returned), one larger than the whole
     * budget is invalid, and once the others end the same request is accepted and answers.
     */
    @Test
    void theKvCacheBudgetRefusesWhatDoesNotFitAndAcceptsItAgainOnceOthersEnd() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel java = TinyModels.model(config, 4);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 4), dir);
        int[] prompt = prompt(6, 10);
        SamplingSettings greedy = SamplingSettings.greedy(20, Set.of());
        ServedModel probe = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
        long perRequest = 30 * probe.kvBytesPerToken();
        probe.retire();
        // Room for one request of 10 + 20 tokens, not two; 64 tokens never fit.
        EngineSettings settings = ONE_THREAD.withKvCache(perRequest + perRequest / 2, 16);
        try (Engine engine = new Engine(settings)) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, settings);
            CountDownLatch refusedSeen = new CountDownLatch(1);
            Collector first = new Collector() {
                @Override
                public void onToken(int token, String delta) {
                    try {
                        assertTrue(refusedSeen.await(60, TimeUnit.SECONDS));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    super.onToken(token, delta);
                }
            };
            assertTrue(model.tryAcquire());
            engine.submit(model, new GenerationRequest(prompt, greedy, List.of(), null), first);
            assertTrue(model.tryAcquire());
            KvCacheFullException full = assertThrows(KvCacheFullException.class,
                    () -> engine.submit(model, new GenerationRequest(prompt, greedy, List.of(), null), new Collector()));
            assertTrue(full.getMessage().contains(perRequest + " bytes"), full.getMessage());
            assertTrue(model.tryAcquire());
            IllegalArgumentException tooLarge = assertThrows(IllegalArgumentException.class, () -> engine.submit(model,
                    new GenerationRequest(prompt(7, 50), SamplingSettings.greedy(14, Set.of()), List.of(), null),
                    new Collector()));
            assertTrue(tooLarge.getMessage().contains("KV cache"), tooLarge.getMessage());
            refusedSeen.countDown();
            int[] expected = Generator.generate(java, prompt, greedy).tokens();
            assertArrayEquals(expected, first.get().tokens());
            assertArrayEquals(expected, submit(engine, model, prompt, greedy, List.of(), null).get().tokens());
            model.retire();
            assertTrue(model.isClosed(), "refused requests returned their leases");
        }
    }

    @Test
    void stopTokenAndStopSequencesEndTheTextAsTheyAppear() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel java = TinyModels.model(config, 3);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 3), dir);
        try (Engine engine = new Engine(ONE_THREAD.withBatching(4, 8))) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            int[] prompt = toIds("Hello, world");
            SamplingSettings greedy = SamplingSettings.greedy(40, Set.of());
            int[] free = Generator.generate(java, prompt, greedy).tokens();
            String fullText = model.tokenizer().decode(free);
            // A stop token: the greedy output's 6th token, wherever it first appears.
            int stopToken = free[5];
            SamplingSettings withStopToken = SamplingSettings.greedy(40, Set.of(stopToken));
            Collector stoppedByToken = submit(engine, model, prompt, withStopToken, List.of(), null);
            assertSameAsGenerator(java, prompt, withStopToken, stoppedByToken);
            assertEquals(FinishReason.STOP, stoppedByToken.get().finishReason());
            int[] beforeStop = stoppedByToken.get().tokens();
            assertEquals(model.tokenizer().decode(Arrays.copyOf(beforeStop, beforeStop.length - 1)),
                    stoppedByToken.get().text(), "the stop token's text is not part of the answer");

            // A stop sequence: two characters from the middle of the free text.
            int from = fullText.length() / 2;
            while (from < fullText.length() - 2 && (fullText.charAt(from) == '\uFFFD' || fullText.charAt(from + 1) == '\uFFFD')) {
                from++;
            }
            String stop = fullText.substring(from, from + 2);
            Collector stoppedByText = submit(engine, model, prompt, greedy, List.of("never appears", stop), null);
            Completion completion = stoppedByText.get();
            assertEquals(FinishReason.STOP, completion.finishReason());
            assertEquals(fullText.substring(0, fullText.indexOf(stop)), completion.text());
            assertTrue(completion.tokens().length < free.length);
            assertTrue(completion.text().startsWith(stoppedByText.text.toString()),
                    "streamed text is a prefix of the answer: " + stoppedByText.text);
            assertFalse(stoppedByText.text.toString().contains(stop));

            // No stop at all: the streamed pieces add up to the whole text.
            Collector unstopped = submit(engine, model, prompt, greedy, List.of("\u0000\u0001never"), null);
            assertEquals(fullText, unstopped.get().text());
            assertEquals(FinishReason.LENGTH, unstopped.get().finishReason());
        }
    }

    @Test
    void theModelsOwnEndOfTurnTokensEndItsAnswers() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel java = TinyModels.model(config, 3);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 3), dir);
        int[] prompt = toIds("Hello, world");
        int[] free = Generator.generate(java, prompt, SamplingSettings.greedy(40, Set.of())).tokens();
        ServedModel plain = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
        assertEquals(List.of(ByteLevelTokenizerJson.END_OF_TEXT_ID), plain.stopTokenIds(), "the tokenizer's end of text");
        plain.retire();
        // A chat model lists its end-of-turn token beside end-of-text in generation_config.json.
        Files.writeString(onnx.resolveSibling(StopTokens.GENERATION_CONFIG_FILE),
                "{\"eos_token_id\": [" + ByteLevelTokenizerJson.END_OF_TEXT_ID + ", " + free[5] + "]}");
        ServedModel chat = ServedModel.load("tiny", "2", onnx, null, ONE_THREAD);
        assertEquals(List.of(ByteLevelTokenizerJson.END_OF_TEXT_ID, free[5]), chat.stopTokenIds());
        chat.retire();
    }

    private static int[] toIds(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = bytes[i] & 0xff;
        }
        return ids;
    }

    @Test
    void aFullQueueRefusesAndEveryAcceptedRequestStillCompletes() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel java = TinyModels.model(config, 4);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 4), dir);
        try (Engine engine = new Engine(ONE_THREAD.withBatching(1, 2))) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            int[] prompt = prompt(5, 10);
            SamplingSettings greedy = SamplingSettings.greedy(40, Set.of());
            List<Collector> accepted = new ArrayList<>();
            int refused = 0;
            for (int i = 0; i < 30; i++) {
                try {
                    accepted.add(submit(engine, model, prompt, greedy, List.of(), null));
                } catch (QueueFullException e) {
                    refused++;
                }
            }
            assertTrue(refused > 0, "30 requests at once into a queue of 2 behind a batch of 1");
            int[] expected = Generator.generate(java, prompt, greedy).tokens();
            for (Collector collector : accepted) {
                assertArrayEquals(expected, collector.get().tokens());
            }
            model.retire();
            assertTrue(model.isClosed(), "refused requests returned their leases too");
        }
    }

    /**
     * A waiting generation cancelled leaves the queue at once and returns its lease; one past its deadline
     * ends with DeadlineExceededException, waiting or running; the one running to its end is untouched.
     */
    @Test
    void cancelledAndLateGenerationsLeaveTheEngine() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel java = TinyModels.model(config, 4);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 4), dir);
        try (Engine engine = new Engine(ONE_THREAD.withBatching(1, 4))) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            int[] prompt = prompt(5, 10);
            SamplingSettings greedy = SamplingSettings.greedy(50, Set.of());
            // The engine's thread waits in this one's first token until the others are queued and one cancelled.
            CountDownLatch queued = new CountDownLatch(1);
            Collector running = new Collector() {
                @Override
                public void onToken(int token, String delta) {
                    try {
                        assertTrue(queued.await(60, TimeUnit.SECONDS));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    super.onToken(token, delta);
                }
            };
            assertTrue(model.tryAcquire());
            engine.submit(model, new GenerationRequest(prompt, greedy, List.of(), null), running);
            assertTrue(model.tryAcquire());
            Collector cancelledListener = new Collector();
            Engine.Generation cancelled = engine.submit(model, new GenerationRequest(prompt, greedy, List.of(), null),
                    cancelledListener);
            assertTrue(model.tryAcquire());
            Collector late = new Collector();
            engine.submit(model, new GenerationRequest(prompt, greedy, List.of(), null), late, System.nanoTime());
            int waiting = engine.queueDepth();
            cancelled.cancel();
            assertEquals(waiting - 1, engine.queueDepth(), "a cancelled generation leaves the queue at once");
            queued.countDown();

            assertArrayEquals(Generator.generate(java, prompt, greedy).tokens(), running.get().tokens());
            ExecutionException lateEnd = assertThrows(ExecutionException.class, late::get);
            assertInstanceOf(DeadlineExceededException.class, lateEnd.getCause());
            assertFalse(cancelledListener.done.isDone(), "a cancelled generation's listener hears nothing more");
            model.retire();
            assertTrue(model.isClosed(), "every lease returned");
        }
    }

    @Test
    void aGenerationWhoseDeadlinePassesWhileRunningEndsAtTheNextStep() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        Path onnx = TinyModels.export(TinyModels.model(config, 4), TinyModels.weights(config, 4), dir);
        try (Engine engine = new Engine(ONE_THREAD)) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
            Collector slow = new Collector() {
                @Override
                public void onToken(int token, String delta) {
                    // The deadline passes during the first token.
                    for (long left; (left = deadline - System.nanoTime()) > 0; ) {
                        LockSupport.parkNanos(left);
                    }
                    super.onToken(token, delta);
                }
            };
            assertTrue(model.tryAcquire());
            engine.submit(model, new GenerationRequest(prompt(5, 10), SamplingSettings.greedy(50, Set.of()), List.of(), null),
                    slow, deadline);
            ExecutionException late = assertThrows(ExecutionException.class, slow::get);
            assertInstanceOf(DeadlineExceededException.class, late.getCause());
            assertEquals(1, slow.streamed.size(), "ended at the step after its deadline");
            model.retire();
            assertTrue(model.isClosed(), "its lease returned");
        }
    }

    @Test
    void badRequestsAreRefusedWithTheReasonAndReturnTheirLease() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel java = TinyModels.model(config, 5);
        Path onnx = TinyModels.export(java, TinyModels.weights(config, 5), dir);
        try (Engine engine = new Engine(ONE_THREAD)) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            SamplingSettings greedy = SamplingSettings.greedy(4, Set.of());
            var tooLong = assertThrows(IllegalArgumentException.class,
                    () -> submit(engine, model, prompt(1, 64), greedy, List.of(), null));
            assertTrue(tooLong.getMessage().contains("context of 64"), tooLong.getMessage());
            var outside = assertThrows(IllegalArgumentException.class,
                    () -> submit(engine, model, new int[] {1, 257}, greedy, List.of(), null));
            assertTrue(outside.getMessage().contains("257"), outside.getMessage());
            var empty = assertThrows(IllegalArgumentException.class,
                    () -> submit(engine, model, new int[0], greedy, List.of(), null));
            assertTrue(empty.getMessage().contains("at least one token"), empty.getMessage());
            var adapter = assertThrows(IllegalArgumentException.class,
                    () -> submit(engine, model, new int[] {1}, greedy, List.of(), "nope"));
            assertTrue(adapter.getMessage().contains("nope"), adapter.getMessage());
            model.retire();
            assertTrue(model.isClosed());
        }
    }

    @Test
    void aModelWhoseChecksumDiffersIsRefused() throws Exception {
        CausalLanguageModel java = TinyModels.model(TinyModels.GPT2, 6);
        Path onnx = TinyModels.export(java, TinyModels.weights(TinyModels.GPT2, 6), dir);
        ModelLoadException e = assertThrows(ModelLoadException.class,
                () -> ServedModel.load("tiny", "1", onnx, "00".repeat(32), ONE_THREAD));
        assertTrue(e.getMessage().contains("SHA-256"), e.getMessage());
        ServedModel model = ServedModel.load("tiny", "1", onnx, dev.loraflow.core.io.Sha256.of(onnx).toUpperCase(), ONE_THREAD);
        model.retire();
    }

    @Test
    void aSwapLetsRequestsOnTheOldModelFinishThenClosesIt() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        CausalLanguageModel javaA = TinyModels.model(config, 7);
        CausalLanguageModel javaB = TinyModels.model(config, 8);
        Path onnxA = TinyModels.export(javaA, TinyModels.weights(config, 7), dir.resolve("a"));
        Path onnxB = TinyModels.export(javaB, TinyModels.weights(config, 8), dir.resolve("b"));
        try (Engine engine = new Engine(ONE_THREAD); ModelRegistry registry = new ModelRegistry()) {
            ServedModel a = ServedModel.load("tiny", "1", onnxA, null, ONE_THREAD);
            registry.serve(a);
            int[] prompt = prompt(9, 6);
            SamplingSettings greedy = SamplingSettings.greedy(50, Set.of());
            List<Collector> onA = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                ServedModel leased = registry.acquire("tiny");
                Collector collector = new Collector();
                engine.submit(leased, new GenerationRequest(prompt, greedy, List.of(), null), collector);
                onA.add(collector);
            }
            registry.serve(ServedModel.load("tiny", "2", onnxB, null, ONE_THREAD));
            ServedModel b = registry.acquire("tiny");
            Collector onB = new Collector();
            engine.submit(b, new GenerationRequest(prompt, greedy, List.of(), null), onB);

            int[] expectedA = Generator.generate(javaA, prompt, greedy).tokens();
            int[] expectedB = Generator.generate(javaB, prompt, greedy).tokens();
            assertNotEquals(List.of(expectedA), List.of(expectedB));
            for (Collector collector : onA) {
                assertArrayEquals(expectedA, collector.get().tokens());
                assertEquals("1", collector.get().modelVersion());
            }
            assertArrayEquals(expectedB, onB.get().tokens());
            assertEquals("2", onB.get().modelVersion());
            assertTrue(a.isClosed(), "the replaced model closed once its requests ended");
            assertFalse(registry.current("tiny").isClosed());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("architectures")
    void twoAdaptersOnOneUnmergedBaseEachEqualTheirOwnModelInOneBatch(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TinyModels.weights(config, 10);
        CausalLanguageModel first = TinyModels.adapted(config, weights, 11);
        // Another rank on fewer modules: stacked along r, rows must not pick up each other's ranks.
        CausalLanguageModel second = TinyModels.adapted(config, weights, 12, 3, switch (config) {
            case Gpt2Config _ -> new String[] {"c_attn"};
            case DecoderConfig decoder when decoder.family().fusedProjections() -> new String[] {"qkv_proj"};
            case DecoderConfig _ -> new String[] {"q_proj", "up_proj"};
        });
        CausalLanguageModel base = CausalLanguageModel.create(config, weights, null, 0);
        Path onnx = TinyModels.export(first, weights, dir, OnnxExporter.Options.defaults().withUnmerged(true));
        try (Engine engine = new Engine(ONE_THREAD.withBatching(8, 16))) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
            List<Integer> batches = new java.util.concurrent.CopyOnWriteArrayList<>();
            // The engine's thread waits at its first step until all six are queued, so they decode together
            // whatever the machine's load (a busy CI runner once ran them one after another).
            CountDownLatch queued = new CountDownLatch(1);
            recordStepsHeldUntil(engine, batches, queued);
            model.loadAdapter("first", first.toPeftAdapter());
            model.loadAdapter("second", second.toPeftAdapter());
            assertEquals(List.of("first", "second"), model.adapterNames());
            SamplingSettings greedy = SamplingSettings.greedy(12, Set.of());
            List<Collector> collectors = new ArrayList<>();
            List<CausalLanguageModel> references = new ArrayList<>();
            List<int[]> prompts = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                int[] prompt = prompt(20 + i, 3 + i);
                String adapter = switch (i % 3) {
                    case 0 -> "first";
                    case 1 -> "second";
                    default -> null;
                };
                prompts.add(prompt);
                references.add(switch (i % 3) {
                    case 0 -> first;
                    case 1 -> second;
                    default -> base;
                });
                collectors.add(submit(engine, model, prompt, greedy, List.of(), adapter));
            }
            queued.countDown();
            for (int i = 0; i < collectors.size(); i++) {
                assertSameAsGenerator(references.get(i), prompts.get(i), greedy, collectors.get(i));
            }
            assertNotEquals(List.of(Generator.generate(first, prompts.get(0), greedy).tokens()),
                    List.of(Generator.generate(second, prompts.get(0), greedy).tokens()));
            assertTrue(batches.stream().anyMatch(batch -> batch > 2), "adapters and the base decoded in one run: " + batches);
            model.retire();
        }
    }

    /**
     * 64 adapters of ranks 1, 2, 4 and 8 (on different modules) and the base model, 65 requests decoded in
     * one batch: each row gathers its own adapter, its ranks zero-padded to the largest, and answers as its
     * merged Java model does.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("twoArchitectures")
    void sixtyFourAdaptersOfMixedRanksInOneBatchEachEqualTheirMergedModel(String arch, ModelConfig config) throws Exception {
        Map<String, float[]> weights = TinyModels.weights(config, 40);
        String[] targets = config instanceof Gpt2Config ? new String[] {"c_attn", "c_fc"} : new String[] {"q_proj", "v_proj", "up_proj"};
        CausalLanguageModel exported = TinyModels.adapted(config, weights, 41, 2, targets);
        Path onnx = TinyModels.export(exported, weights, dir, OnnxExporter.Options.defaults().withUnmerged(true));
        int adapters = 64;
        EngineSettings settings = ONE_THREAD.withBatching(adapters + 2, 128);
        try (Engine engine = new Engine(settings)) {
            ServedModel model = ServedModel.load("tiny", "1", onnx, null, settings);
            List<CausalLanguageModel> merged = new ArrayList<>();
            for (int i = 0; i < adapters; i++) {
                int rank = 1 << (i % 4);
                // Every other adapter leaves one module out: rank 0 there, an update of zeros.
                String[] own = i % 2 == 0 ? targets : Arrays.copyOf(targets, targets.length - 1);
                CausalLanguageModel adapted = TinyModels.adapted(config, weights, 100 + i, rank, own);
                model.loadAdapter("adapter-" + i, adapted.toPeftAdapter());
                adapted.merge();
                merged.add(adapted);
            }
            merged.add(CausalLanguageModel.create(config, weights, null, 0));
            List<Integer> batches = new java.util.concurrent.CopyOnWriteArrayList<>();
            engine.onStep(batches::add);
            // The engine's thread waits in this one's first token until all 65 are queued: they join together.
            CountDownLatch queued = new CountDownLatch(1);
            Collector blocker = new Collector() {
                @Override
                public void onToken(int token, String delta) {
                    try {
                        assertTrue(queued.await(60, TimeUnit.SECONDS));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    super.onToken(token, delta);
                }
            };
            SamplingSettings greedy = SamplingSettings.greedy(6, Set.of());
            assertTrue(model.tryAcquire());
            engine.submit(model, new GenerationRequest(prompt(1, 3), greedy, List.of(), null), blocker);
            List<int[]> prompts = new ArrayList<>();
            List<Collector> collectors = new ArrayList<>();
            for (int i = 0; i <= adapters; i++) {
                int[] prompt = prompt(200 + i, 2 + i % 7);
                prompts.add(prompt);
                collectors.add(submit(engine, model, prompt, greedy, List.of(), i < adapters ? "adapter-" + i : null));
            }
            queued.countDown();
            blocker.get();
            for (int i = 0; i <= adapters; i++) {
                assertSameAsGenerator(merged.get(i), prompts.get(i), greedy, collectors.get(i));
            }
            assertTrue(batches.stream().anyMatch(batch -> batch >= adapters + 1), "all 65 in one run: " + batches);
            long distinct = collectors.stream().map(collector -> List.of(Arrays.stream(collector.done.join().tokens())
                    .boxed().toArray())).distinct().count();
            assertTrue(distinct > adapters / 2, "the adapters answer differently: " + distinct + " distinct answers");
            model.retire();
        }
    }

    static Stream<Arguments> twoArchitectures() {
        return Stream.of(Arguments.of(TinyModels.GPT2.modelType(), TinyModels.GPT2),
                Arguments.of(TinyModels.LLAMA.modelType(), TinyModels.LLAMA));
    }

    /**
     * Loading beyond the adapter count or bytes unloads the least recently used others (a request's use
     * counts), never the one loaded; one larger than the byte bound alone is refused.
     */
    @Test
    void adaptersBeyondTheBoundsUnloadTheLeastRecentlyUsed() throws Exception {
        ModelConfig config = TinyModels.GPT2;
        Map<String, float[]> weights = TinyModels.weights(config, 50);
        CausalLanguageModel adapted = TinyModels.adapted(config, weights, 51);
        Path onnx = TinyModels.export(adapted, weights, dir, OnnxExporter.Options.defaults().withUnmerged(true));
        var peft = adapted.toPeftAdapter();
        long bytes = dev.loraflow.onnx.LoraInputs.of(peft).values().stream()
                .mapToLong(tensor -> tensor.values().length * 4L).sum();
        ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD.withAdapterLimits(3, 10 * bytes));
        for (String name : List.of("a", "b", "c")) {
            model.loadAdapter(name, peft);
        }
        model.adapterFeeds("a");
        model.loadAdapter("d", peft);
        assertEquals(List.of("a", "c", "d"), model.adapterNames(), "b was the least recently used");
        ServedModel byBytes = ServedModel.load("tiny", "2", onnx, null, ONE_THREAD.withAdapterLimits(100, 2 * bytes + 1));
        byBytes.loadAdapter("a", peft);
        byBytes.loadAdapter("b", peft);
        byBytes.loadAdapter("c", peft);
        assertEquals(List.of("b", "c"), byBytes.adapterNames());
        ServedModel tiny = ServedModel.load("tiny", "3", onnx, null, ONE_THREAD.withAdapterLimits(100, bytes - 1));
        ModelLoadException tooLarge = assertThrows(ModelLoadException.class, () -> tiny.loadAdapter("a", peft));
        assertTrue(tooLarge.getMessage().contains("more than"), tooLarge.getMessage());
        for (ServedModel served : List.of(model, byBytes, tiny)) {
            served.retire();
        }
    }

    @Test
    void runsOnTheRequestedProvider() throws Exception {
        Path onnx = TinyModels.export(TinyModels.model(TinyModels.GPT2, 1), TinyModels.weights(TinyModels.GPT2, 1), dir);
        ServedModel model = ServedModel.load("tiny", "1", onnx, null, ONE_THREAD);
        assertEquals(PROVIDER == EngineSettings.Provider.CUDA ? "cuda:0" : "cpu", model.provider(),
                "no CUDA provider or GPU: ONNX Runtime fell back to the CPU (see the log)");
        model.retire();
    }

    /** Records each step's batch size; the engine's thread waits at its first step until {@code queued} opens. */
    private static void recordStepsHeldUntil(Engine engine, List<Integer> sizes, CountDownLatch queued) {
        engine.onStep(size -> {
            sizes.add(size);
            try {
                assertTrue(queued.await(60, TimeUnit.SECONDS));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
    }
}
