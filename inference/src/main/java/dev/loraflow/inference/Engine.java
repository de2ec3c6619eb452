package dev.loraflow.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.core.generate.Sampler;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.GraphNames;
import java.lang.System.Logger.Level;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

/**
 * Continuous batching over exported KV-cache graphs. One thread runs steps; between steps waiting
 * requests join (their prompts prefilled together, left-padded) and finished ones leave, so concurrent
 * requests share every decode step. Sequences on the same model form a group, decoded in one ONNX Runtime
 * run per step whatever their adapters: an un-merged graph is fed every member's adapter at once (see
 * {@link LoraRows}). Different models (a swap in progress) are different groups.
 *
 * <p>While a group's members stay the same, each step feeds the last run's present.* back as past.*,
 * left padding and all, as Transformers' generate does. When a member leaves or joins, every member's
 * cache is copied out of the batch and the batch rebuilt, left-padded to the longest sequence.
 *
 * <p>Each sequence samples with its own core {@link Sampler}, seeded by its request, and stops as core's
 * Generator does, so a greedy request gives the Generator's tokens.
 */
public final class Engine implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(Engine.class.getName());

    private final EngineSettings settings;
    private final BlockingQueue<Sequence> queue;
    private final Map<ServedModel, Group> groups = new LinkedHashMap<>();
    private final Thread thread;
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private volatile boolean running = true;
    private volatile int activeSequences;
    private volatile IntConsumer stepObserver = batch -> { };

    public Engine(EngineSettings settings) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.queue = new ArrayBlockingQueue<>(settings.queueCapacity());
        this.thread = Thread.ofPlatform().name("loraflow-engine").daemon().start(this::loop);
    }

    /** A handle on an accepted generation. */
    public final class Generation {
        private final Sequence sequence;

        private Generation(Sequence sequence) {
            this.sequence = sequence;
        }

        /**
         * Stops it: still waiting, it leaves the queue now; in the batch, before the next step runs. The
         * listener hears nothing more.
         */
        public void cancel() {
            sequence.cancelled = true;
            if (queue.remove(sequence)) {
                // Out of the queue before the engine took it: only this thread can still reach it.
                sequence.end();
            }
        }
    }

    /**
     * Queues a generation on {@code model}, on which the caller holds a lease ({@link ServedModel#tryAcquire});
     * the engine releases it when the generation ends, or here when it is refused.
     *
     * @throws IllegalArgumentException if the prompt is empty, fills the context or holds an id outside
     *                                  the vocabulary, a stop id is outside it, stop sequences are given
     *                                  without a tokenizer, or the adapter is not loaded
     * @throws QueueFullException       if {@link EngineSettings#queueCapacity()} requests are waiting
     */
    public Generation submit(ServedModel model, GenerationRequest request, GenerationListener listener) {
        return submit(model, request, listener, Long.MAX_VALUE);
    }

    /**
     * As {@link #submit(ServedModel, GenerationRequest, GenerationListener)}, ended with a
     * {@link DeadlineExceededException} to the listener if still waiting or running at {@code deadlineNanos}
     * ({@link System#nanoTime()}'s clock; {@link Long#MAX_VALUE} for none).
     */
    public Generation submit(ServedModel model, GenerationRequest request, GenerationListener listener, long deadlineNanos) {
        Sequence sequence;
        try {
            validate(model, request);
            sequence = new Sequence(model, request, Objects.requireNonNull(listener, "listener"), deadlineNanos);
        } catch (RuntimeException e) {
            model.release();
            throw e;
        }
        if (!running || !queue.offer(sequence)) {
            model.release();
            if (!running) {
                throw new IllegalStateException("the engine is shut down");
            }
            throw new QueueFullException(settings.queueCapacity());
        }
        return new Generation(sequence);
    }

    private static void validate(ServedModel model, GenerationRequest request) {
        int context = model.contextLength();
        int vocab = model.vocabSize();
        if (request.promptLength() == 0) {
            throw new IllegalArgumentException("the prompt must hold at least one token");
        }
        if (request.promptLength() >= context) {
            throw new IllegalArgumentException("a prompt of " + request.promptLength()
                    + " tokens leaves no room for a new one in the model's context of " + context);
        }
        for (int i = 0; i < request.promptLength(); i++) {
            int id = request.promptId(i);
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("prompt token id " + id + " at index " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        for (int stop : request.sampling().stopTokenIds()) {
            if (stop >= vocab) {
                throw new IllegalArgumentException("stop token id " + stop + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        if (!request.stopSequences().isEmpty() && model.tokenizer() == null) {
            throw new IllegalArgumentException("stop sequences need the model's tokenizer.json, which " + model.name()
                    + " has not");
        }
        if (request.adapter() != null && !model.hasAdapter(request.adapter())) {
            throw new IllegalArgumentException("no adapter " + request.adapter() + " is loaded on " + model.name());
        }
    }

    /**
     * The engine thread runs and takes requests. False after {@link #close()} and after the thread died of
     * an unexpected failure, when every request is refused: the service is then not live.
     */
    public boolean alive() {
        return running && thread.isAlive();
    }

    /** Requests waiting to join the batch. */
    public int queueDepth() {
        return queue.size();
    }

    /** Sequences in the batch. */
    public int activeSequences() {
        return activeSequences;
    }

    public EngineSettings settings() {
        return settings;
    }

    /** Told the number of sequences of every decode run: a step runs once per model (twice during a swap). */
    public void onStep(IntConsumer observer) {
        this.stepObserver = Objects.requireNonNull(observer, "observer");
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void loop() {
        List<Sequence> joining = new ArrayList<>();
        try {
            while (running) {
                int active = groups.values().stream().mapToInt(group -> group.members.size()).sum();
                if (active == 0) {
                    Sequence first = queue.poll(100, TimeUnit.MILLISECONDS);
                    if (first == null) {
                        continue;
                    }
                    joining.add(first);
                }
                while (active + joining.size() < settings.maxBatchSize()) {
                    Sequence next = queue.poll();
                    if (next == null) {
                        break;
                    }
                    joining.add(next);
                }
                prefill(joining);
                joining.clear();
                for (Iterator<Group> it = groups.values().iterator(); it.hasNext(); ) {
                    Group group = it.next();
                    if (!group.members.isEmpty()) {
                        stepObserver.accept(group.members.size());
                        decode(group);
                    }
                    if (group.members.isEmpty()) {
                        group.close();
                        it.remove();
                    }
                }
                activeSequences = groups.values().stream().mapToInt(group -> group.members.size()).sum();
            }
        } catch (InterruptedException e) {
            // close() ends the loop.
        } catch (RuntimeException | Error e) {
            LOG.log(Level.ERROR, "the engine loop failed", e);
        } finally {
            running = false;
            RuntimeException shutDown = new IllegalStateException("the engine shut down before the generation ended");
            joining.forEach(sequence -> sequence.fail(shutDown));
            for (Sequence sequence; (sequence = queue.poll()) != null; ) {
                sequence.fail(shutDown);
            }
            for (Group group : groups.values()) {
                group.members.forEach(sequence -> sequence.fail(shutDown));
                group.close();
            }
            groups.clear();
        }
    }

    /** Runs the prompts of the joining sequences, each group's together, and samples their first tokens. */
    private void prefill(List<Sequence> joining) {
        Map<ServedModel, List<Sequence>> byGroup = new LinkedHashMap<>();
        long now = System.nanoTime();
        for (Sequence sequence : joining) {
            if (sequence.cancelled) {
                sequence.end();
                continue;
            }
            if (sequence.expired(now)) {
                sequence.fail(new DeadlineExceededException(0));
                continue;
            }
            sequence.startNanos = System.nanoTime();
            byGroup.computeIfAbsent(sequence.model, model -> new ArrayList<>()).add(sequence);
        }
        for (var entry : byGroup.entrySet()) {
            Group group = groups.computeIfAbsent(entry.getKey(), Group::new);
            List<Sequence> sequences = entry.getValue();
            try {
                prefill(group, sequences);
            } catch (OrtException | RuntimeException e) {
                RuntimeException failure = e instanceof RuntimeException runtime ? runtime
                        : new IllegalStateException("ONNX Runtime failed on the prompt: " + e.getMessage(), e);
                sequences.forEach(sequence -> sequence.fail(failure));
                continue;
            }
            List<Sequence> staying = new ArrayList<>();
            for (Sequence sequence : sequences) {
                if (sequence.finished()) {
                    sequence.end();
                } else {
                    staying.add(sequence);
                }
            }
            if (!staying.isEmpty()) {
                group.detach(null);
                group.members.addAll(staying);
            }
        }
    }

    private void prefill(Group group, List<Sequence> sequences) throws OrtException {
        ServedModel model = group.model;
        int n = sequences.size();
        int padded = sequences.stream().mapToInt(sequence -> sequence.request.promptLength()).max().orElseThrow();
        long[] ids = new long[n * padded];
        long[] mask = new long[n * padded];
        long[] positions = new long[n * padded];
        for (int b = 0; b < n; b++) {
            GenerationRequest request = sequences.get(b).request;
            int padding = padded - request.promptLength();
            for (int j = 0; j < padded; j++) {
                boolean real = j >= padding;
                ids[b * padded + j] = real ? request.promptId(j - padding) : 0;
                mask[b * padded + j] = real ? 1 : 0;
                positions[b * padded + j] = real ? j - padding : 1;
            }
        }
        float[][] emptyPast = new float[2 * model.numLayers()][0];
        Map<String, OnnxTensor> adapters = adapterTensors(model, sequences);
        try (OrtSession.Result result = run(model, adapters, n, padded, ids, mask, positions, emptyPast, 0, null)) {
            float[] logits = ServedModel.floats(output(result, GraphNames.LOGITS));
            int vocab = model.vocabSize();
            List<float[]> presents = presents(model, result);
            for (int b = 0; b < n; b++) {
                Sequence sequence = sequences.get(b);
                int length = sequence.request.promptLength();
                sequence.cache = extract(model, presents, n, padded, b, length);
                sequence.fed = length;
                int from = (b * padded + padded - 1) * vocab;
                sequence.accept(Arrays.copyOfRange(logits, from, from + vocab));
            }
        } finally {
            adapters.values().forEach(OnnxTensor::close);
        }
    }

    /** One token for every member of the group, after those cancelled or past their deadline have left it. */
    private void decode(Group group) {
        ServedModel model = group.model;
        List<Sequence> members = group.members;
        long now = System.nanoTime();
        List<Sequence> gone = members.stream().filter(sequence -> sequence.cancelled || sequence.expired(now)).toList();
        if (!gone.isEmpty()) {
            group.detach(gone);
            members.removeAll(gone);
            for (Sequence sequence : gone) {
                if (sequence.cancelled) {
                    sequence.end();
                } else {
                    sequence.fail(new DeadlineExceededException(sequence.count));
                }
            }
            if (members.isEmpty()) {
                return;
            }
        }
        int n = members.size();
        int past = group.present != null ? group.presentLength : members.stream().mapToInt(sequence -> sequence.fed).max().orElseThrow();
        int total = past + 1;
        long[] ids = new long[n];
        long[] mask = new long[n * total];
        long[] positions = new long[n];
        for (int b = 0; b < n; b++) {
            Sequence sequence = members.get(b);
            ids[b] = sequence.pending;
            positions[b] = sequence.fed;
            int padding = total - sequence.fed - 1;
            for (int j = padding; j < total; j++) {
                mask[b * total + j] = 1;
            }
        }
        OrtSession.Result result;
        try {
            float[][] pastValues = null;
            if (group.present == null) {
                pastValues = new float[2 * model.numLayers()][];
                for (int i = 0; i < pastValues.length; i++) {
                    pastValues[i] = new float[n * model.kvHeads() * past * model.headDim()];
                }
                for (int b = 0; b < n; b++) {
                    insert(model, members.get(b).cache, pastValues, past, b, members.get(b).fed);
                    members.get(b).cache = null;
                }
                group.feedAdapters(adapterTensors(model, members));
            }
            result = run(model, group.adapterTensors, n, 1, ids, mask, positions, pastValues, past, group.present);
        } catch (OrtException | RuntimeException e) {
            RuntimeException failure = e instanceof RuntimeException runtime ? runtime
                    : new IllegalStateException("ONNX Runtime failed in a decode step: " + e.getMessage(), e);
            members.forEach(sequence -> sequence.fail(failure));
            members.clear();
            group.dropPresent();
            return;
        }
        group.dropPresent();
        group.present = result;
        group.presentLength = total;
        float[] logits = ServedModel.floats(output(result, GraphNames.LOGITS));
        int vocab = model.vocabSize();
        List<Sequence> leaving = new ArrayList<>();
        for (int b = 0; b < n; b++) {
            Sequence sequence = members.get(b);
            sequence.fed++;
            if (sequence.cancelled) {
                leaving.add(sequence);
                continue;
            }
            sequence.accept(Arrays.copyOfRange(logits, b * vocab, (b + 1) * vocab));
            if (sequence.finished()) {
                leaving.add(sequence);
            }
        }
        if (!leaving.isEmpty()) {
            group.detach(leaving);
            members.removeAll(leaving);
            leaving.forEach(Sequence::end);
        }
    }

    /** The LoRA inputs of a run over these sequences, one row each, with every row's adapter. */
    private Map<String, OnnxTensor> adapterTensors(ServedModel model, List<Sequence> rows) throws OrtException {
        Map<String, FloatTensor> feeds = LoraRows.feeds(model.loraInputs(), rows.stream().map(row -> row.adapter).toList());
        Map<String, OnnxTensor> tensors = new HashMap<>();
        try {
            for (Map.Entry<String, FloatTensor> feed : feeds.entrySet()) {
                tensors.put(feed.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(feed.getValue().values()),
                        feed.getValue().shape()));
            }
        } catch (OrtException | RuntimeException e) {
            tensors.values().forEach(OnnxTensor::close);
            throw e;
        }
        return tensors;
    }

    /**
     * Runs the graph on {@code rows} new tokens per sequence after {@code past} cached ones, given either
     * as arrays [layer key, layer value, …] of [n, kvHeads, past, headDim] or as the last run's result.
     */
    private OrtSession.Result run(ServedModel model, Map<String, OnnxTensor> adapters, int n, int rows, long[] ids,
                                  long[] mask, long[] positions, float[][] pastValues, int past,
                                  OrtSession.Result previous) throws OrtException {
        Map<String, OnnxTensor> inputs = new HashMap<>(adapters);
        List<OnnxTensor> owned = new ArrayList<>();
        try {
            owned.add(put(inputs, GraphNames.INPUT_IDS, OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {n, rows})));
            owned.add(put(inputs, GraphNames.ATTENTION_MASK,
                    OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {n, past + rows})));
            owned.add(put(inputs, GraphNames.POSITION_IDS,
                    OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {n, rows})));
            long[] pastShape = {n, model.kvHeads(), past, model.headDim()};
            for (int layer = 0; layer < model.numLayers(); layer++) {
                if (previous != null) {
                    inputs.put(GraphNames.pastKey(layer), output(previous, GraphNames.presentKey(layer)));
                    inputs.put(GraphNames.pastValue(layer), output(previous, GraphNames.presentValue(layer)));
                } else {
                    owned.add(put(inputs, GraphNames.pastKey(layer),
                            OnnxTensor.createTensor(env, FloatBuffer.wrap(pastValues[2 * layer]), pastShape)));
                    owned.add(put(inputs, GraphNames.pastValue(layer),
                            OnnxTensor.createTensor(env, FloatBuffer.wrap(pastValues[2 * layer + 1]), pastShape)));
                }
            }
            return model.session().run(inputs);
        } finally {
            owned.forEach(OnnxTensor::close);
        }
    }

    private static OnnxTensor put(Map<String, OnnxTensor> inputs, String name, OnnxTensor tensor) {
        inputs.put(name, tensor);
        return tensor;
    }

    private static OnnxTensor output(OrtSession.Result result, String name) {
        return (OnnxTensor) result.get(name).orElseThrow(() -> new IllegalStateException("the graph has no output " + name));
    }

    /** [key 0, value 0, key 1, …], each [n, kvHeads, total, headDim]. */
    private static List<float[]> presents(ServedModel model, OrtSession.Result result) {
        List<float[]> presents = new ArrayList<>();
        for (int layer = 0; layer < model.numLayers(); layer++) {
            presents.add(ServedModel.floats(output(result, GraphNames.presentKey(layer))));
            presents.add(ServedModel.floats(output(result, GraphNames.presentValue(layer))));
        }
        return presents;
    }

    /** Sequence b's last {@code length} slots of each [n, kvHeads, total, headDim] tensor, as [kvHeads, length, headDim]. */
    private static float[][] extract(ServedModel model, List<float[]> presents, int n, int total, int b, int length) {
        int heads = model.kvHeads();
        int headDim = model.headDim();
        float[][] cache = new float[presents.size()][];
        for (int i = 0; i < presents.size(); i++) {
            float[] batch = presents.get(i);
            float[] own = new float[heads * length * headDim];
            for (int h = 0; h < heads; h++) {
                System.arraycopy(batch, ((b * heads + h) * total + total - length) * headDim, own, h * length * headDim,
                        length * headDim);
            }
            cache[i] = own;
        }
        return cache;
    }

    /** The inverse of {@link #extract}: sequence b's cache into the last {@code length} slots of row b. */
    private static void insert(ServedModel model, float[][] cache, float[][] batch, int total, int b, int length) {
        int heads = model.kvHeads();
        int headDim = model.headDim();
        for (int i = 0; i < cache.length; i++) {
            for (int h = 0; h < heads; h++) {
                System.arraycopy(cache[i], h * length * headDim, batch[i], ((b * heads + h) * total + total - length) * headDim,
                        length * headDim);
            }
        }
    }

    /**
     * Sequences decoded in one run per step, and while they stay the same the last run's KV cache and
     * their adapters' inputs.
     */
    private final class Group {
        final ServedModel model;
        final List<Sequence> members = new ArrayList<>();
        Map<String, OnnxTensor> adapterTensors = Map.of();
        /** The last decode run, whose present.* hold every member's cache; null when the members hold it. */
        OrtSession.Result present;
        int presentLength;

        Group(ServedModel model) {
            this.model = model;
        }

        /** Replaces the members' adapter inputs (after they changed). */
        void feedAdapters(Map<String, OnnxTensor> tensors) {
            adapterTensors.values().forEach(OnnxTensor::close);
            adapterTensors = tensors;
        }

        /** Copies every member's cache but those leaving out of the last run, which is then dropped. */
        void detach(List<Sequence> leaving) {
            if (present == null) {
                return;
            }
            List<float[]> presents = presents(model, present);
            for (int b = 0; b < members.size(); b++) {
                Sequence member = members.get(b);
                if (leaving == null || !leaving.contains(member)) {
                    member.cache = extract(model, presents, members.size(), presentLength, b, member.fed);
                }
            }
            dropPresent();
        }

        void dropPresent() {
            if (present != null) {
                present.close();
                present = null;
            }
        }

        void close() {
            dropPresent();
            feedAdapters(Map.of());
        }
    }

    /** One request's state in the engine. */
    private static final class Sequence {
        final ServedModel model;
        final GenerationRequest request;
        /** The adapter's inputs as loaded when the request came: unloading it later does not cut it short. */
        final Map<String, FloatTensor> adapter;
        final GenerationListener listener;
        final Sampler sampler;
        final TextStream text;
        final int limit;
        final long submittedNanos = System.nanoTime();
        final long deadlineNanos;
        final int[] generated;
        int count;
        long startNanos;
        long firstTokenNanos;
        /** Tokens in the KV cache. */
        int fed;
        /** The last generated token, not yet fed. */
        int pending;
        /** [layer key, layer value, …] of [kvHeads, fed, headDim] while the group's last run does not hold it. */
        float[][] cache;
        FinishReason finishReason;
        volatile boolean cancelled;
        private boolean ended;

        Sequence(ServedModel model, GenerationRequest request, GenerationListener listener, long deadlineNanos) {
            this.deadlineNanos = deadlineNanos;
            this.model = model;
            this.request = request;
            this.adapter = model.adapterFeeds(request.adapter());
            this.listener = listener;
            this.sampler = new Sampler(request.sampling(), model.vocabSize());
            this.text = model.tokenizer() == null ? null : new TextStream(model.tokenizer(), request.stopSequences());
            this.limit = Math.min(request.sampling().maxNewTokens(), model.contextLength() - request.promptLength());
            this.generated = new int[limit];
        }

        /** Samples the next token from its logits row [vocab], tells the listener, and completes when it ends. */
        void accept(float[] logits) {
            int token;
            try {
                token = sampler.sample(logits);
            } catch (RuntimeException e) {
                fail(e);
                return;
            }
            if (count == 0) {
                firstTokenNanos = System.nanoTime();
            }
            generated[count++] = token;
            pending = token;
            boolean stopToken = request.sampling().stopTokenIds().contains(token);
            String delta = text == null || stopToken ? "" : text.add(token);
            if (stopToken || (text != null && text.stopped())) {
                finishReason = FinishReason.STOP;
            } else if (count == limit) {
                finishReason = FinishReason.LENGTH;
            }
            try {
                listener.onToken(token, delta);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "a generation listener failed; the generation is cancelled", e);
                cancelled = true;
                return;
            }
            if (finishReason != null) {
                complete();
            }
        }

        boolean expired(long now) {
            return deadlineNanos != Long.MAX_VALUE && now - deadlineNanos >= 0;
        }

        boolean finished() {
            return finishReason != null || cancelled || ended;
        }

        private void complete() {
            long now = System.nanoTime();
            Completion completion = new Completion(Arrays.copyOf(generated, count), text == null ? null : text.text(),
                    finishReason, request.promptLength(), model.version(), startNanos - submittedNanos,
                    firstTokenNanos - submittedNanos, now - submittedNanos);
            end();
            try {
                listener.onComplete(completion);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "a generation listener failed on completion", e);
            }
        }

        void fail(RuntimeException error) {
            if (ended) {
                return;
            }
            end();
            try {
                listener.onError(error);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "a generation listener failed on an error", e);
            }
        }

        /** Releases the model lease, once. */
        void end() {
            if (!ended) {
                ended = true;
                cache = null;
                model.release();
            }
        }
    }
}
