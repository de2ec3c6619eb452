package dev.loraflow.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.loraflow.core.generate.GenerationResult.FinishReason;
import dev.loraflow.core.generate.Sampler;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.GraphNames;
import dev.loraflow.onnx.LoraInputs;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntConsumer;

/**
 * Continuous batching over exported KV-cache graphs. One thread runs steps; between steps waiting
 * requests join (their prompts prefilled together, right-padded) and finished ones leave, so concurrent
 * requests share every decode step. Sequences on the same model form a group, decoded in one ONNX Runtime
 * run per step whatever their adapters: an un-merged graph gathers each row's own adapter from the stacked
 * adapters of {@link AdapterSlots}. Different models (a swap in progress) are different groups.
 *
 * <p>A group's KV cache lives in a {@link BatchCache}, right-padded rows in native memory the engine owns, bound
 * as both past.* and present.* (pinned outputs): the graph's GroupQueryAttention writes each step's new keys and
 * values into it in place. ONNX Runtime writes the logits into a
 * buffer of the group's, from which greedy decoding takes the arg-max in place. Only a joining or leaving
 * row is copied. A prompt longer than {@link EngineSettings#prefillChunkTokens()} is run in chunks, one per
 * step, between the batch's decode steps. Each accepted request reserves its KV cache (prompt and new
 * tokens) within {@link EngineSettings#kvCacheBytes()}; one more is refused ({@link KvCacheFullException}).
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
    private final OrtEnvironment env = OnnxRuntimeNatives.environment();
    private volatile boolean running = true;
    private volatile int activeSequences;
    private volatile IntConsumer stepObserver = batch -> { };
    /** KV cache bytes reserved by the accepted generations not yet ended. */
    private final AtomicLong reservations = new AtomicLong();

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
     *                                  without a tokenizer, the adapter is not loaded, or the prompt and the new
     *                                  tokens need more KV cache than {@link EngineSettings#kvCacheBytes()}
     * @throws QueueFullException       if {@link EngineSettings#queueCapacity()} requests are waiting
     * @throws KvCacheFullException     if the running and waiting requests leave too little of the KV cache budget
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
            reserve(sequence.kvBytes);
        } catch (RuntimeException e) {
            model.release();
            throw e;
        }
        if (!running || !queue.offer(sequence)) {
            sequence.end();
            if (!running) {
                throw new IllegalStateException("the engine is shut down");
            }
            throw new QueueFullException(settings.queueCapacity());
        }
        return new Generation(sequence);
    }

    /**
     * Reserves a generation's KV cache within {@link EngineSettings#kvCacheBytes()}.
     *
     * @throws IllegalArgumentException if it needs more than the whole budget
     * @throws KvCacheFullException     if the others' reservations leave too little now
     */
    private void reserve(long bytes) {
        long budget = settings.kvCacheBytes();
        if (bytes > budget) {
            throw new IllegalArgumentException("the prompt and max tokens need " + bytes + " bytes of KV cache, more than"
                    + " the server's whole budget of " + budget + "; ask for fewer tokens");
        }
        while (true) {
            long reserved = reservations.get();
            if (reserved + bytes > budget) {
                throw new KvCacheFullException(bytes, reserved, budget);
            }
            if (reservations.compareAndSet(reserved, reserved + bytes)) {
                return;
            }
        }
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
                int active = activeCount();
                if (active == 0) {
                    dropClosedGroups();
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
                admit(joining);
                joining.clear();
                for (Iterator<Group> it = groups.values().iterator(); it.hasNext(); ) {
                    Group group = it.next();
                    prefill(group);
                    if (!group.members.isEmpty()) {
                        stepObserver.accept(group.members.size());
                        decode(group);
                    }
                    if (group.members.isEmpty() && group.prefilling.isEmpty() && group.model.isClosed()) {
                        group.close();
                        it.remove();
                    }
                }
                activeSequences = activeCount();
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
                group.prefilling.forEach(sequence -> sequence.fail(shutDown));
                group.close();
            }
            groups.clear();
        }
    }

    /**
     * Forgets the groups of models closed since (swapped out): an idle group of an open model keeps its buffers,
     * so that the next requests on it allocate nothing.
     */
    private void dropClosedGroups() {
        for (Iterator<Group> it = groups.values().iterator(); it.hasNext(); ) {
            Group group = it.next();
            if (group.model.isClosed()) {
                group.close();
                it.remove();
            }
        }
    }

    private int activeCount() {
        return groups.values().stream().mapToInt(group -> group.members.size() + group.prefilling.size()).sum();
    }

    /** The joining sequences still wanted start their prefill in their model's group. */
    private void admit(List<Sequence> joining) {
        long now = System.nanoTime();
        for (Sequence sequence : joining) {
            if (sequence.cancelled) {
                sequence.end();
            } else if (sequence.expired(now)) {
                sequence.fail(new DeadlineExceededException(0));
            } else {
                sequence.startNanos = System.nanoTime();
                Group group = groups.computeIfAbsent(sequence.model, Group::new);
                if (group.adapters != null) {
                    Set<Integer> inUse = new HashSet<>();
                    group.members.forEach(member -> inUse.add(member.slot));
                    group.prefilling.forEach(member -> inUse.add(member.slot));
                    sequence.slot = group.adapters.assign(sequence.adapter, inUse);
                }
                group.prefilling.add(sequence);
            }
        }
    }

    /**
     * One prefill step of the group: prompts of at most {@link EngineSettings#prefillChunkTokens()} tokens not
     * yet started run together; each longer prompt runs its next chunk. Each finished prompt samples its first
     * token and joins the batch (its rows copied into the batch's cache).
     */
    private void prefill(Group group) {
        if (group.prefilling.isEmpty()) {
            return;
        }
        long now = System.nanoTime();
        int chunk = settings.prefillChunkTokens();
        List<Sequence> together = new ArrayList<>();
        List<Sequence> chunked = new ArrayList<>();
        for (Sequence sequence : group.prefilling) {
            if (sequence.cancelled) {
                sequence.end();
            } else if (sequence.expired(now)) {
                sequence.fail(new DeadlineExceededException(0));
            } else if (sequence.own == null && sequence.request.promptLength() <= chunk) {
                together.add(sequence);
            } else {
                chunked.add(sequence);
            }
        }
        group.prefilling.clear();
        if (!together.isEmpty()) {
            try {
                prefillTogether(group, together);
                together.forEach(sequence -> join(group, sequence, group.scratch, together.indexOf(sequence)));
            } catch (OrtException | RuntimeException e) {
                RuntimeException failure = e instanceof RuntimeException runtime ? runtime
                        : new IllegalStateException("ONNX Runtime failed on the prompt: " + e.getMessage(), e);
                together.forEach(sequence -> sequence.fail(failure));
            }
        }
        for (Sequence sequence : chunked) {
            try {
                if (prefillChunk(group, sequence, chunk)) {
                    join(group, sequence, sequence.own, 0);
                } else {
                    group.prefilling.add(sequence);
                }
            } catch (OrtException | RuntimeException e) {
                sequence.fail(e instanceof RuntimeException runtime ? runtime
                        : new IllegalStateException("ONNX Runtime failed on the prompt: " + e.getMessage(), e));
            }
        }
    }

    /** A prefilled sequence's cache (row {@code row} of {@code source}) joins the batch, unless it already ended. */
    private static void join(Group group, Sequence sequence, BatchCache source, int row) {
        sequence.own = null;
        if (sequence.finished()) {
            sequence.end();
            return;
        }
        group.cache.append(source, row, sequence.fed);
        group.members.add(sequence);
        group.adaptersStale = true;
    }

    /** The whole prompts of {@code sequences} in one run, right-padded to the longest, into the group's scratch cache. */
    private void prefillTogether(Group group, List<Sequence> sequences) throws OrtException {
        ServedModel model = group.model;
        int n = sequences.size();
        int padded = sequences.stream().mapToInt(sequence -> sequence.request.promptLength()).max().orElseThrow();
        long[] ids = new long[n * padded];
        long[] mask = new long[n * padded];
        long[] positions = new long[n * padded];
        for (int b = 0; b < n; b++) {
            GenerationRequest request = sequences.get(b).request;
            for (int j = 0; j < request.promptLength(); j++) {
                ids[b * padded + j] = request.promptId(j);
                mask[b * padded + j] = 1;
                positions[b * padded + j] = j;
            }
        }
        group.scratch.reset(n);
        OnnxTensor slots = group.adapters == null ? null : group.adapters.rows(slotsOf(sequences));
        try {
            FloatBuffer logits = run(group, group.scratch, adapterInputs(group, slots), n, padded, ids, mask, positions);
            int vocab = model.vocabSize();
            for (int b = 0; b < n; b++) {
                Sequence sequence = sequences.get(b);
                sequence.fed = sequence.request.promptLength();
                sequence.accept(logits, (b * padded + sequence.fed - 1) * vocab);
            }
        } finally {
            closeQuietly(slots);
        }
    }

    /** The next chunk of the sequence's prompt into its own cache; whether the prompt is done (first token sampled). */
    private boolean prefillChunk(Group group, Sequence sequence, int chunk) throws OrtException {
        ServedModel model = group.model;
        if (sequence.own == null) {
            sequence.own = new BatchCache(model.numLayers(), model.kvHeads(), model.headDim());
            sequence.own.reset(1);
        }
        int from = sequence.fed;
        int rows = Math.min(chunk, sequence.request.promptLength() - from);
        long[] ids = new long[rows];
        long[] mask = new long[from + rows];
        long[] positions = new long[rows];
        for (int j = 0; j < rows; j++) {
            ids[j] = sequence.request.promptId(from + j);
            positions[j] = from + j;
        }
        Arrays.fill(mask, 1);
        OnnxTensor slots = group.adapters == null ? null : group.adapters.rows(new int[] {sequence.slot});
        try {
            FloatBuffer logits = run(group, sequence.own, adapterInputs(group, slots), 1, rows, ids, mask, positions);
            sequence.fed = from + rows;
            if (sequence.fed < sequence.request.promptLength()) {
                return false;
            }
            sequence.accept(logits, (rows - 1) * model.vocabSize());
            return true;
        } finally {
            closeQuietly(slots);
        }
    }

    /** One token for every member of the group, after those cancelled or past their deadline have left it. */
    private void decode(Group group) {
        ServedModel model = group.model;
        List<Sequence> members = group.members;
        long now = System.nanoTime();
        List<Sequence> gone = members.stream().filter(sequence -> sequence.cancelled || sequence.expired(now)).toList();
        if (!gone.isEmpty()) {
            group.remove(gone);
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
        int total = members.stream().mapToInt(sequence -> sequence.fed).max().orElseThrow() + 1;
        long[] ids = new long[n];
        long[] mask = new long[n * total];
        long[] positions = new long[n];
        for (int b = 0; b < n; b++) {
            Sequence sequence = members.get(b);
            ids[b] = sequence.pending;
            positions[b] = sequence.fed;
            Arrays.fill(mask, b * total, b * total + sequence.fed + 1, 1L);
        }
        FloatBuffer logits;
        try {
            if (group.adapters != null && group.adaptersStale) {
                closeQuietly(group.rowSlots);
                group.rowSlots = null;
                group.rowSlots = group.adapters.rows(slotsOf(members));
                group.adaptersStale = false;
            }
            logits = run(group, group.cache, adapterInputs(group, group.rowSlots), n, 1, ids, mask, positions);
        } catch (OrtException | RuntimeException e) {
            RuntimeException failure = e instanceof RuntimeException runtime ? runtime
                    : new IllegalStateException("ONNX Runtime failed in a decode step: " + e.getMessage(), e);
            members.forEach(sequence -> sequence.fail(failure));
            members.clear();
            group.cache.clear();
            return;
        }
        int vocab = model.vocabSize();
        List<Sequence> leaving = new ArrayList<>();
        for (int b = 0; b < n; b++) {
            Sequence sequence = members.get(b);
            sequence.fed++;
            if (sequence.cancelled) {
                leaving.add(sequence);
                continue;
            }
            sequence.accept(logits, b * vocab);
            if (sequence.finished()) {
                leaving.add(sequence);
            }
        }
        if (!leaving.isEmpty()) {
            group.remove(leaving);
            leaving.forEach(Sequence::end);
        }
    }

    /** The LoRA inputs of a run whose rows use {@code slots} ({@link AdapterSlots#rows}); none for a merged model. */
    private static Map<String, OnnxTensor> adapterInputs(Group group, OnnxTensor slots) throws OrtException {
        if (group.adapters == null) {
            return Map.of();
        }
        Map<String, OnnxTensor> inputs = new HashMap<>(group.adapters.tensors());
        inputs.put(LoraInputs.SLOT, slots);
        return inputs;
    }

    private static int[] slotsOf(List<Sequence> rows) {
        return rows.stream().mapToInt(row -> row.slot).toArray();
    }

    private static void closeQuietly(OnnxTensor tensor) {
        if (tensor != null) {
            tensor.close();
        }
    }

    /**
     * Runs the graph on {@code rows} new tokens per sequence after the cache's, their mask [n, total] right-padded
     * (each row's cached and new tokens), ONNX Runtime writing the new keys and values into the cache (which then
     * holds them) and the logits [n, rows, vocab] into the group's buffer, which it returns.
     */
    private FloatBuffer run(Group group, BatchCache cache, Map<String, OnnxTensor> adapters, int n, int rows, long[] ids,
                            long[] mask, long[] positions) throws OrtException {
        ServedModel model = group.model;
        Map<String, OnnxTensor> inputs = new HashMap<>(adapters);
        Map<String, OnnxTensor> outputs = new HashMap<>();
        List<OnnxTensor> owned = new ArrayList<>();
        try {
            owned.add(put(inputs, GraphNames.INPUT_IDS, OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {n, rows})));
            owned.add(put(inputs, GraphNames.ATTENTION_MASK,
                    OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {n, mask.length / n})));
            owned.add(put(inputs, GraphNames.POSITION_IDS,
                    OnnxTensor.createTensor(env, LongBuffer.wrap(positions), new long[] {n, rows})));
            Map<String, OnnxTensor> cacheInputs = new HashMap<>();
            cache.bind(env, mask.length / n, cacheInputs, outputs);
            owned.addAll(cacheInputs.values());
            owned.addAll(outputs.values());
            inputs.putAll(cacheInputs);
            int vocab = model.vocabSize();
            FloatBuffer logits = group.logits(n * rows * vocab);
            owned.add(put(outputs, GraphNames.LOGITS, OnnxTensor.createTensor(env, logits, new long[] {n, rows, vocab})));
            model.session().run(inputs, outputs).close();
            return logits;
        } finally {
            owned.forEach(OnnxTensor::close);
        }
    }

    private static OnnxTensor put(Map<String, OnnxTensor> inputs, String name, OnnxTensor tensor) {
        inputs.put(name, tensor);
        return tensor;
    }

    /**
     * Sequences decoded in one run per step, their KV cache in rows of the group's {@link BatchCache} (in
     * {@link #members}' order), and the adapters' inputs of those rows while they stay the same.
     */
    private final class Group {
        final ServedModel model;
        final List<Sequence> members = new ArrayList<>();
        /** Admitted, their prompts not yet run to the end; they join {@link #members} when it is. */
        final List<Sequence> prefilling = new ArrayList<>();
        final BatchCache cache;
        /** The cache of prompts prefilled together, copied row by row into {@link #cache}. */
        final BatchCache scratch;
        /** The stacked adapters of an un-merged model; null for a merged one. */
        final AdapterSlots adapters;
        /** The members' slots (lora.slot) in row order, while they stay the same. */
        OnnxTensor rowSlots;
        /** The members changed since {@link #rowSlots} was made. */
        boolean adaptersStale = true;
        /** Where ONNX Runtime writes the logits of the group's runs. */
        private FloatBuffer logits;

        Group(ServedModel model) {
            this.model = model;
            this.cache = new BatchCache(model.numLayers(), model.kvHeads(), model.headDim());
            this.scratch = new BatchCache(model.numLayers(), model.kvHeads(), model.headDim());
            this.adapters = model.loraInputs().isEmpty() ? null : new AdapterSlots(env, model, settings.maxBatchSize());
        }

        /** The logits buffer, exactly {@code floats} long (grown when needed). */
        FloatBuffer logits(int floats) {
            if (logits == null || logits.capacity() < floats) {
                logits = ByteBuffer.allocateDirect(Math.multiplyExact(floats, Float.BYTES)).order(ByteOrder.nativeOrder())
                        .asFloatBuffer();
            }
            return logits.slice(0, floats);
        }

        /** Takes these members out: each one's row is filled by the last row, only it copied. */
        void remove(List<Sequence> leaving) {
            int[] rows = leaving.stream().mapToInt(members::indexOf).sorted().toArray();
            for (int i = rows.length - 1; i >= 0; i--) {
                int row = rows[i];
                int last = members.size() - 1;
                cache.remove(row, members.get(last).fed);
                members.set(row, members.get(last));
                members.remove(last);
            }
            adaptersStale = true;
        }

        void close() {
            cache.clear();
            closeQuietly(rowSlots);
            rowSlots = null;
            if (adapters != null) {
                adapters.close();
            }
        }
    }

    /** One request's state in the engine. */
    private final class Sequence {
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
        /** The KV cache reserved for its prompt and its new tokens, given back when it ends. */
        final long kvBytes;
        int count;
        long startNanos;
        long firstTokenNanos;
        /** Tokens in the KV cache. */
        int fed;
        /** The last generated token, not yet fed. */
        int pending;
        /** Its adapter's slot in the group's {@link AdapterSlots}. */
        int slot;
        /** Its prompt's cache so far while it is prefilled in chunks; null otherwise. */
        BatchCache own;
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
            this.kvBytes = (request.promptLength() + (long) limit) * model.kvBytesPerToken();
        }

        /**
         * Samples the next token from its logits row [vocab] at {@code offset} in {@code logits}, tells the
         * listener, and completes when it ends.
         */
        void accept(FloatBuffer logits, int offset) {
            int token;
            try {
                token = sampler.sample(logits, offset);
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
                own = null;
                reservations.addAndGet(-kvBytes);
                model.release();
            }
        }
    }
}
