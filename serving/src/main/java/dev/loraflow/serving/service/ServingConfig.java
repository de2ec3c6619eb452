package dev.loraflow.serving.service;

import io.quarkus.runtime.configuration.MemorySize;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * Serving's settings, {@code loraflow.serving.*} (each also its environment variable,
 * {@code LORAFLOW_SERVING_MODEL_PATH} for {@code loraflow.serving.model.path}); application.properties
 * documents every key.
 */
@ConfigMapping(prefix = "loraflow.serving")
public interface ServingConfig {

    /** The default model: served at start when a path is given, and the name of the newest announced model. */
    DefaultModel model();

    /** Several models by name, and the memory they may take together. */
    Models models();

    @WithDefault("cpu")
    String provider();

    @WithDefault("0")
    int cudaDevice();

    @WithDefault("all")
    String optimizationLevel();

    @WithDefault("0")
    int intraOpThreads();

    @WithDefault("0")
    int interOpThreads();

    @WithDefault("false")
    boolean intraOpSpinning();

    @WithDefault("true")
    boolean memoryArena();

    @WithDefault("16")
    int maxBatchSize();

    @WithDefault("64")
    int queueCapacity();

    /** KV cache bytes the running and waiting requests may reserve together: one more answers 429, one needing more alone 400. */
    @WithDefault("2147483648")
    long kvCacheBytes();

    /** Prompts longer than this are prefilled a chunk per decode step, so running decodes do not stall. */
    @WithDefault("128")
    int prefillChunkTokens();

    /** Adapters loaded at once on an un-merged model (count and float32 bytes); beyond either, the least recently used go. */
    @WithDefault("256")
    int maxAdapters();

    @WithDefault("2147483648")
    long maxAdapterBytes();

    @WithDefault("1")
    int retryAfterSeconds();

    @WithDefault("PT5M")
    Duration requestTimeout();

    @WithDefault("1048576")
    long maxBodyBytes();

    /** Keys for the inference endpoints; none = open. */
    Optional<List<String>> inferenceKeys();

    @WithDefault("4")
    int inferenceKeyConcurrency();

    /** The directories the admin API may read models and adapters from. */
    List<String> adminRoots();

    @WithDefault("false")
    boolean followModels();

    /** The announced models (job ids) to follow; {@code *} follows any; none configured follows none. */
    Optional<List<String>> followModelNames();

    @WithDefault("false")
    boolean followAdapters();

    Optional<String> adapterBaseModel();

    Optional<String> adapterBaseSha256();

    interface DefaultModel {
        @WithDefault("loraflow")
        String name();

        Optional<String> path();

        Optional<String> sha256();

        Optional<String> configDir();
    }

    interface Models {
        /**
         * What the loaded models' weights (their .onnx and .onnx_data files) may take together; beyond it the
         * least recently used are closed, to be loaded again when asked for. 0 = no limit.
         */
        @WithDefault("0")
        MemorySize memoryBudget();
    }
}
