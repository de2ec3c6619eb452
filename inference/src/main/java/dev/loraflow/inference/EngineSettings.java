package dev.loraflow.inference;

import ai.onnxruntime.providers.OrtCUDAProviderOptions;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtProvider;
import ai.onnxruntime.OrtSession;
import java.lang.System.Logger.Level;
import java.util.Locale;
import java.util.Objects;

/**
 * How models are run: ONNX Runtime's execution provider and session options, and the batcher's limits.
 *
 * @param provider          where the graph runs; CUDA falls back to the CPU, with a log line saying why
 * @param cudaDeviceId      the GPU used with {@link Provider#CUDA}
 * @param optimizationLevel ONNX Runtime's graph optimisation level
 * @param intraOpThreads    threads inside one operator; 0 lets ONNX Runtime choose
 * @param interOpThreads    threads across independent operators; 0 lets ONNX Runtime choose
 * @param memoryArena       ONNX Runtime's CPU memory arena (faster, keeps memory it once used)
 * @param maxBatchSize      sequences decoded together in one step, all models and adapters together
 * @param queueCapacity     requests waiting to join the batch; one more is refused ({@link QueueFullException})
 * @param kvCacheBytes      the KV cache that running and waiting requests may reserve together, each its prompt and
 *                          new tokens × layers × KV heads × head dim × 2 (key, value) × 4 bytes; one more is refused
 *                          ({@link KvCacheFullException}), one needing more alone is invalid
 * @param prefillChunkTokens prompt tokens a prefill runs at most per engine step: a longer prompt is run in chunks
 *                          between decode steps, so that it does not stall the running generations
 * @param maxAdapters       adapters loaded at once per model; loading one more unloads the least recently used
 * @param maxAdapterBytes   the adapters' weights loaded at once per model (float32 bytes), likewise
 * @param intraOpSpinning   whether ONNX Runtime's intra-op threads spin between operators waiting for work
 *                          (its default) rather than sleep: off by default, because a decode step is hundreds of
 *                          small operators and, on a machine whose cores other processes also use, spinning
 *                          threads take the cores the working ones need (measured 10× slower per step on a busy
 *                          2-core machine, docs/serving.md)
 */
public record EngineSettings(Provider provider, int cudaDeviceId, OptimizationLevel optimizationLevel,
                             int intraOpThreads, int interOpThreads, boolean memoryArena, int maxBatchSize,
                             int queueCapacity, long kvCacheBytes, int prefillChunkTokens, int maxAdapters,
                             long maxAdapterBytes, boolean intraOpSpinning) {

    /** ONNX Runtime's session configuration key for {@link #intraOpSpinning}. */
    private static final String INTRA_OP_SPINNING = "session.intra_op.allow_spinning";
    private static final System.Logger LOG = System.getLogger(EngineSettings.class.getName());

    /** 2 GiB of KV cache. */
    public static final long DEFAULT_KV_CACHE_BYTES = 2L << 30;
    public static final int DEFAULT_PREFILL_CHUNK_TOKENS = 128;
    public static final int DEFAULT_MAX_ADAPTERS = 256;
    /** 2 GiB of adapter weights. */
    public static final long DEFAULT_MAX_ADAPTER_BYTES = 2L << 30;

    public enum Provider {
        CPU,
        CUDA;

        /** "cpu" or "cuda", any case. */
        public static Provider parse(String name) {
            try {
                return valueOf(name.strip().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("execution provider must be cpu or cuda, got '" + name + "'");
            }
        }
    }

    /** ONNX Runtime's levels: none, basic, extended (fused attention and norms), all (layout too). */
    public enum OptimizationLevel {
        NONE,
        BASIC,
        EXTENDED,
        ALL;

        public static OptimizationLevel parse(String name) {
            try {
                return valueOf(name.strip().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("optimisation level must be none, basic, extended or all, got '"
                        + name + "'");
            }
        }
    }

    public EngineSettings {
        Objects.requireNonNull(provider, "provider");
        Objects.requireNonNull(optimizationLevel, "optimizationLevel");
        if (cudaDeviceId < 0) {
            throw new IllegalArgumentException("CUDA device id must be ≥ 0, got " + cudaDeviceId);
        }
        if (intraOpThreads < 0 || interOpThreads < 0) {
            throw new IllegalArgumentException("thread counts must be ≥ 0 (0 = ONNX Runtime's choice), got intra-op "
                    + intraOpThreads + ", inter-op " + interOpThreads);
        }
        if (maxBatchSize <= 0) {
            throw new IllegalArgumentException("max batch size must be positive, got " + maxBatchSize);
        }
        if (queueCapacity <= 0) {
            throw new IllegalArgumentException("queue capacity must be positive, got " + queueCapacity);
        }
        if (kvCacheBytes <= 0 || prefillChunkTokens <= 0 || maxAdapters <= 0 || maxAdapterBytes <= 0) {
            throw new IllegalArgumentException("KV cache bytes, prefill chunk tokens, max adapters and max adapter bytes"
                    + " must be positive, got " + kvCacheBytes + ", " + prefillChunkTokens + ", " + maxAdapters + ", "
                    + maxAdapterBytes);
        }
    }

    /** The provider, session options and batch limits given; the KV cache, prefill and adapter limits by default. */
    public EngineSettings(Provider provider, int cudaDeviceId, OptimizationLevel optimizationLevel, int intraOpThreads,
                          int interOpThreads, boolean memoryArena, int maxBatchSize, int queueCapacity) {
        this(provider, cudaDeviceId, optimizationLevel, intraOpThreads, interOpThreads, memoryArena, maxBatchSize,
                queueCapacity, DEFAULT_KV_CACHE_BYTES, DEFAULT_PREFILL_CHUNK_TOKENS, DEFAULT_MAX_ADAPTERS,
                DEFAULT_MAX_ADAPTER_BYTES, false);
    }

    /**
     * CPU, all optimisations, ONNX Runtime's thread counts without spinning, arena on, batches of 16, 64 waiting,
     * 2 GiB of KV cache, prefill chunks of 128 tokens, 256 adapters or 2 GiB of them per model.
     */
    public static EngineSettings defaults() {
        return new EngineSettings(Provider.CPU, 0, OptimizationLevel.ALL, 0, 0, true, 16, 64);
    }

    public EngineSettings withIntraOpThreads(int value) {
        return new EngineSettings(provider, cudaDeviceId, optimizationLevel, value, interOpThreads, memoryArena,
                maxBatchSize, queueCapacity, kvCacheBytes, prefillChunkTokens, maxAdapters, maxAdapterBytes, intraOpSpinning);
    }

    public EngineSettings withBatching(int maxBatch, int queue) {
        return new EngineSettings(provider, cudaDeviceId, optimizationLevel, intraOpThreads, interOpThreads, memoryArena,
                maxBatch, queue, kvCacheBytes, prefillChunkTokens, maxAdapters, maxAdapterBytes, intraOpSpinning);
    }

    public EngineSettings withKvCache(long bytes, int prefillChunk) {
        return new EngineSettings(provider, cudaDeviceId, optimizationLevel, intraOpThreads, interOpThreads, memoryArena,
                maxBatchSize, queueCapacity, bytes, prefillChunk, maxAdapters, maxAdapterBytes, intraOpSpinning);
    }

    public EngineSettings withAdapterLimits(int count, long bytes) {
        return new EngineSettings(provider, cudaDeviceId, optimizationLevel, intraOpThreads, interOpThreads, memoryArena,
                maxBatchSize, queueCapacity, kvCacheBytes, prefillChunkTokens, count, bytes, intraOpSpinning);
    }

    public EngineSettings withIntraOpSpinning(boolean value) {
        return new EngineSettings(provider, cudaDeviceId, optimizationLevel, intraOpThreads, interOpThreads, memoryArena,
                maxBatchSize, queueCapacity, kvCacheBytes, prefillChunkTokens, maxAdapters, maxAdapterBytes, value);
    }

    /**
     * Applies these settings to a session's options (the engine's sessions, and the benchmarks' bare ONNX Runtime
     * loops that are timed against it); the provider the session will use, "cuda:N" or "cpu".
     */
    public String configure(OrtSession.SessionOptions options) throws OrtException {
        options.setOptimizationLevel(switch (optimizationLevel()) {
            case NONE -> OrtSession.SessionOptions.OptLevel.NO_OPT;
            case BASIC -> OrtSession.SessionOptions.OptLevel.BASIC_OPT;
            case EXTENDED -> OrtSession.SessionOptions.OptLevel.EXTENDED_OPT;
            case ALL -> OrtSession.SessionOptions.OptLevel.ALL_OPT;
        });
        options.setIntraOpNumThreads(intraOpThreads());
        options.addConfigEntry(INTRA_OP_SPINNING, intraOpSpinning() ? "1" : "0");
        options.setInterOpNumThreads(interOpThreads());
        options.setCPUArenaAllocator(memoryArena());
        if (provider() == Provider.CUDA) {
            if (!OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
                LOG.log(Level.WARNING, "CUDA execution provider requested, but this ONNX Runtime build has none "
                        + "(build with -Pcuda for onnxruntime_gpu); running on the CPU");
                return "cpu";
            }
            try (OrtCUDAProviderOptions cuda = new OrtCUDAProviderOptions(cudaDeviceId())) {
                // Float32 as on the CPU: TF32's 10-bit mantissa in MatMul could change greedy tokens.
                cuda.add("use_tf32", "0");
                options.addCUDA(cuda);
                return "cuda:" + cudaDeviceId();
            } catch (OrtException e) {
                LOG.log(Level.WARNING, "CUDA execution provider on device " + cudaDeviceId()
                        + " is unavailable (" + e.getMessage() + "); running on the CPU");
                return "cpu";
            }
        }
        return "cpu";
    }
}
