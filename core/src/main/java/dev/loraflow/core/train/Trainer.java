package dev.loraflow.core.train;

import dev.loraflow.core.data.Batch;
import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
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

/**
 * LoRA training of a model's adapters: micro-batches from a seeded sampler, gradient accumulation,
 * clipping, AdamW on a schedule.
 *
 * <p>Everything random is a function of the seed and the position in the run — the data order of
 * the sampler's epoch, each micro-batch's dropout key — so the state a {@link TrainingCheckpoint}
 * holds (adapter, moments, step, data position) is all a resumed run needs to continue bit-identically.
 */
public final class Trainer {

    /** Salts the seed for dropout keys, so that they never coincide with the sampler's shuffles. */
    private static final long DROPOUT_STREAM = 0x6c6f7261_64726f70L;

    /** One optimiser update: its 1-based number, the mean loss of its micro-batches, tokens they counted. */
    public record StepResult(long step, double loss, long tokens, float learningRate, double gradNorm) {}

    private final CausalLanguageModel model;
    private final List<Example> examples;
    private final TrainingSettings settings;
    private final int padId;
    private final AdamW optimizer;
    private final List<Parameter> parameters;
    private final CausalLanguageModel.Workspace workspace;
    private BatchSampler sampler;
    private long step;

    /**
     * @param padId the input id of padding positions (their labels are −100, so it affects no loss)
     * @throws IllegalArgumentException if the model has no adapter, there is no example, or the
     *                                  sequence length exceeds the model's context
     */
    public Trainer(CausalLanguageModel model, List<Example> examples, TrainingSettings settings, int padId) {
        if (model.trainableParameters().isEmpty()) {
            throw new IllegalArgumentException("the model has no LoRA adapter to train");
        }
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no training example");
        }
        this.model = model;
        this.examples = List.copyOf(examples);
        this.settings = settings;
        this.padId = padId;
        this.parameters = model.trainableParameters();
        this.optimizer = new AdamW(parameters, settings.optimizer());
        this.workspace = model.newWorkspace(settings.batchSize(), settings.seqLen());
        this.sampler = new BatchSampler(this.examples, settings.batchSize(), settings.seqLen(), padId, settings.seed(), 0);
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

    /** Examples consumed so far, over all epochs: where a resumed run picks the data up. */
    public long dataPosition() {
        return sampler.position();
    }

    /** Runs one optimiser update: {@code gradAccum} micro-batches, clipping, AdamW. */
    public StepResult step() {
        if (finished()) {
            throw new IllegalStateException("training already ran its " + settings.steps() + " steps");
        }
        int accumulation = settings.gradAccum();
        double lossSum = 0;
        long tokens = 0;
        for (int micro = 0; micro < accumulation; micro++) {
            Batch batch = sampler.next();
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
        return new StepResult(step, lossSum / accumulation, tokens, learningRate, gradNorm);
    }

    /** SHA-256 over every example's ids and labels: a resumed run must read the same data. */
    static String fingerprint(List<Example> examples) {
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

    /** Writes the adapter and everything a resumed run needs into {@code directory}. */
    public void save(Path directory) throws IOException {
        TrainingCheckpoint.write(directory, model.toPeftAdapter(), parameters, optimizer.state(),
                TrainingCheckpoint.Progress.of(step, sampler.position(), fingerprint(examples), settings));
    }

    /**
     * Continues from a checkpoint {@link #save} wrote for the same model, data and settings (the total
     * number of steps may differ).
     *
     * @throws TrainingStateException if the checkpoint is damaged or was written by a different run
     */
    public void restore(Path directory) throws IOException {
        TrainingCheckpoint checkpoint = TrainingCheckpoint.read(directory);
        TrainingCheckpoint.Progress progress = checkpoint.progress();
        progress.requireCompatible(settings, fingerprint(examples), directory);
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
        sampler = new BatchSampler(examples, settings.batchSize(), settings.seqLen(), padId, settings.seed(),
                progress.dataPosition());
    }
}
