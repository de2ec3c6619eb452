package dev.loraflow.core.train;

import dev.loraflow.core.data.Batch;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import java.util.ArrayList;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.optim.GradientClipping;
import dev.loraflow.core.optim.Parameter;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.random.Rng;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * LoRA training of a model's adapters: gradient accumulation over micro-batches, clipping, AdamW on
 * a schedule. Data comes from outside — a {@link BatchSampler} over a file's examples, or batches
 * assembled from a stream — together with the data position it has reached.
 *
 * <p>Everything random is a function of the seed and the position in the run (each micro-batch's
 * dropout key; the sampler's order), so the state a {@link TrainingCheckpoint} holds (adapter,
 * moments, step, data position) is all a resumed run needs to continue bit-identically.
 */
public final class Trainer {

    /** Salts the seed for dropout keys, so that they never coincide with the sampler's shuffles. */
    private static final long DROPOUT_STREAM = 0x6c6f7261_64726f70L;

    /** One optimiser update: its 1-based number, the mean loss of its micro-batches, tokens they counted. */
    public record StepResult(long step, double loss, long tokens, float learningRate, double gradNorm) {}

    private final CausalLanguageModel model;
    private final TrainingSettings settings;
    private final String dataId;
    private final AdamW optimizer;
    private final List<Parameter> parameters;
    private final CausalLanguageModel.Workspace workspace;
    /** The base model's digest, perhaps still being taken; null where the caller does not know the base. */
    private final CompletableFuture<String> baseSha256;
    private long step;
    private long dataPosition;
    /** The base digest of the checkpoint this run resumed, which the base must match; null when none. */
    private String resumedBaseSha256;

    /**
     * A run whose checkpoints record no base digest (a merge of its adapter then hashes the base first).
     *
     * @param dataId names the data and its order (e.g. {@link #fingerprint} of a file's examples, or a
     *               job id): a checkpoint resumes only a run over the same data
     * @throws IllegalArgumentException if the model has no adapter or the sequence length exceeds its context
     */
    public Trainer(CausalLanguageModel model, TrainingSettings settings, String dataId) {
        this(model, settings, dataId, null);
    }

    /**
     * @param baseSha256 the {@link dev.loraflow.core.model.ModelDigest ModelDigest} of the base the model was loaded
     *                   from, recorded in each checkpoint so that a merge of the adapter checks its base as it reads
     *                   it, in one pass; it may still be being taken ({@link
     *                   dev.loraflow.core.model.ModelDigest#inBackground}): only {@link #save} waits for it. A resumed
     *                   run whose base differs from its checkpoint's stops at the first step after it is known.
     * @throws IllegalArgumentException if the model has no adapter or the sequence length exceeds its context
     */
    public Trainer(CausalLanguageModel model, TrainingSettings settings, String dataId,
                   CompletableFuture<String> baseSha256) {
        if (model.trainableParameters().isEmpty()) {
            throw new IllegalArgumentException("the model has no LoRA adapter to train");
        }
        this.model = model;
        this.settings = settings;
        this.dataId = dataId;
        this.baseSha256 = baseSha256;
        this.parameters = model.trainableParameters();
        this.optimizer = new AdamW(parameters, settings.optimizer());
        this.workspace = model.newWorkspace(settings.batchSize(), settings.seqLen(), settings.gradientCheckpointing());
        parameters.forEach(Parameter::zeroGrad);
    }

    /** Optimiser updates completed. */
    public long completedSteps() {
        return step;
    }

    public boolean finished() {
        return step >= settings.steps();
    }

    public TrainingSettings settings() {
        return settings;
    }

    public CausalLanguageModel model() {
        return model;
    }

    /** Where the data stands after the last step (examples consumed): where a resumed run picks it up. */
    public long dataPosition() {
        return dataPosition;
    }

    /** One update from the sampler's next {@code gradAccum} batches. */
    public StepResult step(BatchSampler sampler) {
        List<Batch> microBatches = new ArrayList<>();
        for (int micro = 0; micro < settings.gradAccum(); micro++) {
            microBatches.add(sampler.next());
        }
        return step(microBatches, sampler.position());
    }

    /**
     * One optimiser update from exactly {@code gradAccum} micro-batches of {@code batchSize × seqLen}.
     *
     * @param dataPositionAfter where the data stands once these batches are consumed
     */
    public StepResult step(List<Batch> microBatches, long dataPositionAfter) {
        if (finished()) {
            throw new IllegalStateException("training already ran its " + settings.steps() + " steps");
        }
        if (baseSha256 != null && baseSha256.isDone() && !baseSha256.isCompletedExceptionally()) {
            String mismatch = baseMismatch(baseSha256.join());
            if (mismatch != null) {
                throw new IllegalStateException(mismatch);
            }
        }
        int accumulation = settings.gradAccum();
        if (microBatches.size() != accumulation) {
            throw new IllegalArgumentException("a step takes " + accumulation + " micro-batches, got " + microBatches.size());
        }
        for (Batch batch : microBatches) {
            if (batch.batchSize() != settings.batchSize() || batch.seqLen() != settings.seqLen()) {
                throw new IllegalArgumentException("a micro-batch is " + batch.batchSize() + " × " + batch.seqLen()
                        + ", the run's " + settings.batchSize() + " × " + settings.seqLen());
            }
        }
        double lossSum = 0;
        long tokens = 0;
        for (int micro = 0; micro < accumulation; micro++) {
            Batch batch = microBatches.get(micro);
            long dropoutKey = Rng.hash(settings.seed() ^ DROPOUT_STREAM, step * accumulation + micro);
            lossSum += model.forward(workspace, batch.inputIds(), batch.labels(), true, dropoutKey);
            tokens += workspace.countedTokens();
            model.backward(workspace, 1f / accumulation);
        }
        double gradNorm = settings.maxGradNorm() > 0
                ? GradientClipping.clipByGlobalNorm(parameters, settings.maxGradNorm())
                : Double.NaN;
        float learningRate = settings.schedule().at(step);
        optimizer.step(learningRate);
        optimizer.zeroGrad();
        step++;
        dataPosition = dataPositionAfter;
        return new StepResult(step, lossSum / accumulation, tokens, learningRate, gradNorm);
    }

    /** SHA-256 over every example's ids and labels, in order: the data id of a run over a file. */
    public static String fingerprint(List<Example> examples) {
        MessageDigest digest = Sha256.newDigest();
        ByteBuffer buffer = ByteBuffer.allocate(8192).order(ByteOrder.LITTLE_ENDIAN);
        for (Example example : examples) {
            putInts(digest, buffer, new int[] {example.inputIds().length});
            putInts(digest, buffer, example.inputIds());
            putInts(digest, buffer, example.labels());
        }
        buffer.flip();
        digest.update(buffer);
        return Sha256.hex(digest);
    }

    private static void putInts(MessageDigest digest, ByteBuffer buffer, int[] values) {
        for (int value : values) {
            if (buffer.remaining() < Integer.BYTES) {
                buffer.flip();
                digest.update(buffer);
                buffer.clear();
            }
            buffer.putInt(value);
        }
    }

    /**
     * Writes the adapter and everything a resumed run needs into {@code directory}, once the base's digest is known.
     *
     * @throws TrainingStateException if this run resumed a checkpoint trained on another base; nothing is written
     */
    public void save(Path directory) throws IOException {
        String base = resumedBaseSha256;
        if (baseSha256 != null) {
            try {
                base = baseSha256.join();
            } catch (CompletionException e) {
                throw new IOException("cannot record the base model's SHA-256: " + e.getCause().getMessage(), e.getCause());
            }
            String mismatch = baseMismatch(base);
            if (mismatch != null) {
                throw new TrainingStateException(mismatch);
            }
        }
        TrainingCheckpoint.write(directory, model.toPeftAdapter(), parameters, optimizer.state(),
                TrainingCheckpoint.Progress.of(step, dataPosition, dataId, settings, base));
    }

    /** Why the run may not go on on the base with digest {@code actual}, or null when it may. */
    private String baseMismatch(String actual) {
        if (resumedBaseSha256 == null || resumedBaseSha256.equals(actual)) {
            return null;
        }
        return "the checkpoint was trained on the base model with SHA-256 " + resumedBaseSha256 + ", but this base has"
                + " SHA-256 " + actual + ": resume the run on the base it started on";
    }

    /**
     * Continues from a checkpoint {@link #save} wrote for the same model, data and settings (the total
     * number of steps may differ); the data source then resumes at {@link #dataPosition()}.
     *
     * @throws TrainingStateException if the checkpoint is damaged or was written by a different run
     */
    public void restore(Path directory) throws IOException {
        TrainingCheckpoint checkpoint = TrainingCheckpoint.read(directory);
        TrainingCheckpoint.Progress progress = checkpoint.progress();
        progress.requireCompatible(settings, dataId, directory);
        try {
            model.loadAdapter(checkpoint.adapter());
        } catch (IllegalArgumentException e) {
            throw new TrainingStateException(directory + ": the checkpoint's adapter does not fit the model: "
                    + e.getMessage(), e);
        }
        try {
            optimizer.restore(checkpoint.moments().inOrderOf(parameters));
        } catch (IllegalArgumentException e) {
            throw new TrainingStateException(directory + ": " + e.getMessage(), e);
        }
        step = progress.step();
        dataPosition = progress.dataPosition();
        resumedBaseSha256 = progress.baseSha256();
    }
}
