package dev.loraflow.inference;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.onnx.FloatTensor;
import dev.loraflow.onnx.GraphNames;
import dev.loraflow.onnx.LoraInputs;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.OnnxRuntimeNatives;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One exported causal LM open under ONNX Runtime: its session, its config and tokenizer, and for an
 * un-merged export the adapters loaded into it. Requests hold a lease while they run on it; once
 * {@link #retire retired} it closes when the last lease ends, so a swap never cuts a request short.
 *
 * <p>The model is a {@code .onnx} file exported by loraflow (Optimum's input and output names) with
 * {@code config.json} beside it (the context length) and, when present, {@code tokenizer.json} and
 * {@code tokenizer_config.json} (text in and out, and the chat template; without them requests give token
 * ids).
 */
public final class ServedModel {

    static final String LORA_PREFIX = "lora.";

    private static final System.Logger LOG = System.getLogger(ServedModel.class.getName());
    private static final int CLOSED = -1;

    private final String name;
    private final String version;
    private final Path file;
    private final String sha256;
    private final OrtSession session;
    private final String provider;
    private final ModelConfig config;
    private final Tokenizer tokenizer;
    private final ChatTemplate chatTemplate;
    private final List<Integer> stopTokenIds;
    private final int numLayers;
    private final int kvHeads;
    private final int headDim;
    private final List<String> loraInputs;
    private final Map<String, NodeInfo> inputInfo;
    /** Rank-0 feeds for every LoRA input: the base model. */
    private final Map<String, FloatTensor> baseFeeds;
    /**
     * Adapter name → its feeds for every LoRA input of the graph, rank 0 where the adapter has none; least
     * recently used first. Guarded by itself.
     */
    private final Map<String, LoadedAdapter> adapters = new LinkedHashMap<>(16, 0.75f, true);
    private final int maxAdapters;
    private final long maxAdapterBytes;
    /** Float bytes of the adapters loaded. Guarded by {@link #adapters}. */
    private long adapterBytes;
    /** Leases held, or {@link #CLOSED}. */
    private final AtomicInteger leases = new AtomicInteger();
    private volatile boolean retired;
    private final long loadedAtEpochSeconds = System.currentTimeMillis() / 1000;

    private ServedModel(String name, String version, Path file, String sha256, OrtSession session, String provider,
                        ModelConfig config, Tokenizer tokenizer, ChatTemplate chatTemplate,
                        List<Integer> stopTokenIds, EngineSettings settings)
            throws OrtException, ModelLoadException {
        this.name = name;
        this.version = version;
        this.file = file;
        this.sha256 = sha256;
        this.session = session;
        this.provider = provider;
        this.config = config;
        this.tokenizer = tokenizer;
        this.chatTemplate = chatTemplate;
        this.stopTokenIds = List.copyOf(stopTokenIds);
        this.inputInfo = session.getInputInfo();
        int layers = 0;
        while (inputInfo.containsKey(GraphNames.pastKey(layers))) {
            layers++;
        }
        if (layers == 0 || !inputInfo.containsKey(GraphNames.INPUT_IDS) || !inputInfo.containsKey(GraphNames.ATTENTION_MASK)
                || !inputInfo.containsKey(GraphNames.POSITION_IDS) || !session.getOutputInfo().containsKey(GraphNames.LOGITS)) {
            throw new ModelLoadException(file + ": not a KV-cache decoder graph: it needs inputs input_ids, attention_mask,"
                    + " position_ids, past_key_values.{i}.key/value and output logits; it has " + inputInfo.keySet());
        }
        if (layers != config.numLayers()) {
            throw new ModelLoadException(file + ": the graph has " + layers + " layers, config.json says "
                    + config.numLayers());
        }
        String kvCache = session.getMetadata().getCustomMetadata().get(GraphNames.KV_CACHE);
        if (!GraphNames.KV_CACHE_RIGHT_PADDED.equals(kvCache)) {
            throw new ModelLoadException(file + ": its KV cache is not " + GraphNames.KV_CACHE_RIGHT_PADDED + " (metadata "
                    + GraphNames.KV_CACHE + " " + kvCache + "), from an older export; export it again (export-onnx):"
                    + " the engine writes each step's keys in place");
        }
        long[] pastShape = ((TensorInfo) inputInfo.get(GraphNames.pastKey(0)).getInfo()).getShape();
        this.numLayers = layers;
        this.kvHeads = Math.toIntExact(pastShape[1]);
        this.headDim = Math.toIntExact(pastShape[3]);
        this.loraInputs = inputInfo.keySet().stream()
                .filter(input -> input.startsWith(LORA_PREFIX) && !input.equals(LoraInputs.SLOT)).sorted().toList();
        for (String input : loraInputs) {
            if (input.endsWith(".A") && (((TensorInfo) inputInfo.get(input).getInfo()).getShape().length != 3
                    || !inputInfo.containsKey(LoraInputs.SLOT))) {
                throw new ModelLoadException(file + ": " + input + " is not stacked over adapter slots, from an older"
                        + " un-merged export; export it again (export-onnx --unmerged): rows gather their own adapters");
            }
        }
        this.maxAdapters = settings.maxAdapters();
        this.maxAdapterBytes = settings.maxAdapterBytes();
        this.baseFeeds = LoraInputs.withDefaults(inputInfo, Map.of());
    }

    /**
     * Opens {@code onnxFile}, checks its SHA-256 against {@code expectedSha256} (when given) and runs one
     * token through it, so that a model that cannot serve is refused before it is switched to.
     *
     * @throws ModelLoadException naming the file and what is wrong
     */
    public static ServedModel load(String name, String version, Path onnxFile, String expectedSha256,
                                   EngineSettings settings) throws ModelLoadException {
        return load(name, version, onnxFile, expectedSha256, onnxFile.toAbsolutePath().getParent(), settings);
    }

    /**
     * As {@link #load(String, String, Path, String, EngineSettings)}, with config.json and the tokenizer
     * files read from {@code companions} instead of the .onnx file's directory: the merger stores the
     * graph and the merged Hugging Face directory as two artifacts.
     */
    public static ServedModel load(String name, String version, Path onnxFile, String expectedSha256, Path companions,
                                   EngineSettings settings) throws ModelLoadException {
        Objects.requireNonNull(name, "name");
        if (!Files.isRegularFile(onnxFile)) {
            throw new ModelLoadException(onnxFile + ": no such model file");
        }
        Path configFile = companions.resolve("config.json");
        Path tokenizerFile = companions.resolve(Tokenizer.FILE_NAME);
        String sha256;
        ModelConfig config;
        try {
            sha256 = Sha256.of(onnxFile);
            if (expectedSha256 != null && !expectedSha256.strip().equalsIgnoreCase(sha256)) {
                throw new ModelLoadException(onnxFile + ": SHA-256 is " + sha256 + ", expected "
                        + expectedSha256.strip().toLowerCase(Locale.ROOT));
            }
            if (!Files.isRegularFile(configFile)) {
                throw new ModelLoadException(onnxFile + ": needs config.json in " + companions + " (the context length and layers)");
            }
            config = ModelConfig.read(configFile);
            if (settings.provider() == EngineSettings.Provider.CPU) {
                // ONNX Runtime holds the graph's weights in memory: a graph larger than what is available is refused
                // with one line here rather than failing in its allocator or waking the kernel's OOM killer.
                Resources.requireMemory(graphBytes(onnxFile), "the weights of the graph for ONNX Runtime's session",
                        "free memory, or run a quantized export (export-onnx --quantize int4 or int8)");
            }
        } catch (IOException | RuntimeException e) {
            throw new ModelLoadException(onnxFile + ": " + e.getMessage(), e);
        }
        Tokenizer tokenizer = null;
        ChatTemplate chatTemplate = null;
        OrtSession session = null;
        try {
            if (Files.isRegularFile(tokenizerFile)) {
                tokenizer = Tokenizer.load(tokenizerFile);
                chatTemplate = ChatTemplate.read(tokenizerFile.resolveSibling(Tokenizer.CONFIG_FILE_NAME)).orElse(null);
            }
            OrtEnvironment env = OnnxRuntimeNatives.environment();
            String provider;
            try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
                provider = settings.configure(options);
                session = env.createSession(onnxFile.toString(), options);
            }
            ServedModel model = new ServedModel(name, version, onnxFile, sha256, session, provider, config, tokenizer,
                    chatTemplate, StopTokens.of(companions, tokenizer), settings);
            model.warmUp();
            return model;
        } catch (ModelLoadException e) {
            closeQuietly(session, tokenizer);
            throw e;
        } catch (OrtException | IOException | RuntimeException e) {
            closeQuietly(session, tokenizer);
            throw new ModelLoadException(onnxFile + ": " + e.getMessage(), e);
        }
    }

    /** The .onnx file and the external data beside it, when it has one. */
    static long graphBytes(Path onnxFile) throws IOException {
        Path externalData = onnxFile.resolveSibling(onnxFile.getFileName() + OnnxExporter.EXTERNAL_DATA_SUFFIX);
        return Files.size(onnxFile) + (Files.isRegularFile(externalData) ? Files.size(externalData) : 0);
    }

    private static void closeQuietly(OrtSession session, Tokenizer tokenizer) {
        try {
            if (session != null) {
                session.close();
            }
        } catch (OrtException e) {
            LOG.log(Level.WARNING, "closing a session that failed to load: " + e.getMessage());
        }
        if (tokenizer != null) {
            tokenizer.close();
        }
    }

    /** One token of the base model through the graph: a model that loads but cannot run fails here. */
    private void warmUp() throws OrtException, ModelLoadException {
        OrtEnvironment env = OnnxRuntimeNatives.environment();
        Map<String, OnnxTensor> inputs = new HashMap<>();
        try {
            inputs.put(GraphNames.INPUT_IDS, OnnxTensor.createTensor(env, LongBuffer.wrap(new long[] {0}), new long[] {1, 1}));
            inputs.put(GraphNames.ATTENTION_MASK, OnnxTensor.createTensor(env, LongBuffer.wrap(new long[] {1}), new long[] {1, 1}));
            inputs.put(GraphNames.POSITION_IDS, OnnxTensor.createTensor(env, LongBuffer.wrap(new long[] {0}), new long[] {1, 1}));
            long[] emptyPast = {1, kvHeads, 0, headDim};
            for (int layer = 0; layer < numLayers; layer++) {
                inputs.put(GraphNames.pastKey(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), emptyPast));
                inputs.put(GraphNames.pastValue(layer), OnnxTensor.createTensor(env, FloatBuffer.allocate(0), emptyPast));
            }
            for (var feed : adapterFeeds(null).entrySet()) {
                inputs.put(feed.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(feed.getValue().values()),
                        feed.getValue().shape()));
            }
            try (OrtSession.Result result = session.run(inputs)) {
                float[] logits = floats((OnnxTensor) result.get(GraphNames.LOGITS).orElseThrow());
                if (logits.length != config.vocabSize()) {
                    throw new ModelLoadException(file + ": the graph gives " + logits.length
                            + " logits per token, config.json's vocabulary is " + config.vocabSize());
                }
                for (float logit : logits) {
                    if (!Float.isFinite(logit)) {
                        throw new ModelLoadException(file + ": the warm-up token gave a non-finite logit");
                    }
                }
            }
        } finally {
            inputs.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * Loads a PEFT adapter under {@code adapterName} into an un-merged graph; replaces one of that name. Beyond
     * {@link EngineSettings#maxAdapters()} adapters or {@link EngineSettings#maxAdapterBytes()} of their weights,
     * the least recently used others are unloaded (requests running on them finish; new ones naming them are refused).
     *
     * @throws ModelLoadException if the graph is merged or lacks an input the adapter needs, or the adapter alone
     *                            exceeds {@link EngineSettings#maxAdapterBytes()}
     */
    public void loadAdapter(String adapterName, PeftAdapter adapter) throws ModelLoadException {
        if (loraInputs.isEmpty()) {
            throw new ModelLoadException(name + " is a merged export without LoRA inputs; adapters need an un-merged export");
        }
        Map<String, FloatTensor> given = LoraInputs.of(adapter);
        for (var input : given.entrySet()) {
            NodeInfo info = inputInfo.get(input.getKey());
            if (info == null) {
                throw new ModelLoadException("adapter " + adapterName + " adapts " + input.getKey()
                        + ", which the graph has no input for; it has " + loraInputs);
            }
            long[] expected = ((TensorInfo) info.getInfo()).getShape();
            long[] actual = input.getValue().shape();
            for (int d = 0; d < expected.length; d++) {
                if (expected.length != actual.length || (expected[d] >= 0 && expected[d] != actual[d])) {
                    throw new ModelLoadException("adapter " + adapterName + ": " + input.getKey() + " has shape "
                            + java.util.Arrays.toString(actual) + ", the graph wants " + java.util.Arrays.toString(expected));
                }
            }
        }
        long bytes = given.values().stream().mapToLong(tensor -> (long) tensor.values().length * Float.BYTES).sum();
        if (bytes > maxAdapterBytes) {
            throw new ModelLoadException("adapter " + adapterName + " holds " + bytes + " bytes of weights, more than the "
                    + maxAdapterBytes + " allowed for all adapters together");
        }
        LoadedAdapter loaded = new LoadedAdapter(LoraInputs.withDefaults(inputInfo, given), bytes);
        List<String> evicted = new ArrayList<>();
        synchronized (adapters) {
            LoadedAdapter replaced = adapters.put(adapterName, loaded);
            adapterBytes += bytes - (replaced == null ? 0 : replaced.bytes());
            for (var it = adapters.entrySet().iterator(); adapters.size() > maxAdapters || adapterBytes > maxAdapterBytes; ) {
                var eldest = it.next();
                if (eldest.getKey().equals(adapterName)) {
                    continue;
                }
                adapterBytes -= eldest.getValue().bytes();
                evicted.add(eldest.getKey());
                it.remove();
            }
        }
        if (!evicted.isEmpty()) {
            LOG.log(Level.INFO, "unloaded the least recently used adapters " + evicted + " from " + name + " (at most "
                    + maxAdapters + " adapters, " + maxAdapterBytes + " bytes)");
        }
    }

    /** An adapter's feeds and the bytes of its own weights. */
    private record LoadedAdapter(Map<String, FloatTensor> feeds, long bytes) {}

    /** @return whether an adapter of that name was loaded */
    public boolean unloadAdapter(String adapterName) {
        synchronized (adapters) {
            LoadedAdapter removed = adapters.remove(adapterName);
            if (removed != null) {
                adapterBytes -= removed.bytes();
            }
            return removed != null;
        }
    }

    public List<String> adapterNames() {
        synchronized (adapters) {
            return adapters.keySet().stream().sorted().toList();
        }
    }

    public boolean hasAdapter(String adapterName) {
        synchronized (adapters) {
            return adapters.containsKey(adapterName);
        }
    }

    /**
     * The extra feeds of a run: the adapter's, or rank-0 LoRA inputs for the base model (null); empty
     * for a merged graph. The same map for the same adapter until it is loaded again. Counts as a use for
     * the least-recently-used bound.
     *
     * @throws IllegalArgumentException if no adapter of that name is loaded
     */
    Map<String, FloatTensor> adapterFeeds(String adapterName) {
        if (adapterName == null) {
            return baseFeeds;
        }
        LoadedAdapter loaded;
        synchronized (adapters) {
            loaded = adapters.get(adapterName);
        }
        if (loaded == null) {
            throw new IllegalArgumentException("no adapter " + adapterName + " is loaded on " + name);
        }
        return loaded.feeds();
    }

    /** Takes a lease; false once the model is closed (a swap replaced it: look up the current one again). */
    public boolean tryAcquire() {
        while (true) {
            int held = leases.get();
            if (held == CLOSED) {
                return false;
            }
            if (leases.compareAndSet(held, held + 1)) {
                return true;
            }
        }
    }

    public void release() {
        if (leases.decrementAndGet() == 0 && retired) {
            closeIfIdle();
        }
    }

    /** No new work should start here: closes now if idle, else when the last lease ends. */
    public void retire() {
        retired = true;
        closeIfIdle();
    }

    private void closeIfIdle() {
        if (leases.compareAndSet(0, CLOSED)) {
            try {
                session.close();
            } catch (OrtException e) {
                LOG.log(Level.WARNING, "closing " + name + " version " + version + ": " + e.getMessage());
            }
            if (tokenizer != null) {
                tokenizer.close();
            }
            LOG.log(Level.INFO, "closed " + name + " version " + version);
        }
    }

    public boolean isClosed() {
        return leases.get() == CLOSED;
    }

    /** A tensor's values copied out. */
    static float[] floats(OnnxTensor tensor) {
        FloatBuffer buffer = tensor.getFloatBuffer();
        // ONNX Runtime's copy is a heap buffer already: a second copy would double the cost of every step's
        // logits and of every cache rebuild.
        if (buffer.hasArray() && buffer.arrayOffset() == 0 && buffer.position() == 0
                && buffer.remaining() == buffer.array().length) {
            return buffer.array();
        }
        float[] values = new float[buffer.remaining()];
        buffer.get(values);
        return values;
    }

    public String name() {
        return name;
    }

    public String version() {
        return version;
    }

    public Path file() {
        return file;
    }

    /** When this model was loaded, for OpenAI's {@code created}. */
    public long loadedAtEpochSeconds() {
        return loadedAtEpochSeconds;
    }

    public String sha256() {
        return sha256;
    }

    /** "cpu" or "cuda:N": where the session runs. */
    public String provider() {
        return provider;
    }

    public ModelConfig config() {
        return config;
    }

    /** The model's tokenizer, or null when only token ids can be given. */
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The chat template of tokenizer_config.json, or null when it has none (or the model no tokenizer). */
    /** What ends a generation unless the request says otherwise: see {@link StopTokens}. */
    public List<Integer> stopTokenIds() {
        return stopTokenIds;
    }

    public ChatTemplate chatTemplate() {
        return chatTemplate;
    }

    public int contextLength() {
        return config.maxPositions();
    }

    public List<String> loraInputs() {
        return loraInputs;
    }

    OrtSession session() {
        return session;
    }

    int numLayers() {
        return numLayers;
    }

    int kvHeads() {
        return kvHeads;
    }

    int headDim() {
        return headDim;
    }

    /** KV cache bytes of one token: layers × KV heads × head dim × 2 (key, value) × 4 (float32). */
    public long kvBytesPerToken() {
        return (long) numLayers * kvHeads * headDim * 2 * Float.BYTES;
    }

    public int vocabSize() {
        return config.vocabSize();
    }
}
