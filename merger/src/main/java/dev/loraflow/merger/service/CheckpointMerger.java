package dev.loraflow.merger.service;

import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.io.Resources;
import dev.loraflow.platform.store.SafePaths;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.merge.LoraMerge;
import dev.loraflow.core.merge.MergeException;
import dev.loraflow.onnx.OnnxExporter;
import dev.loraflow.onnx.OnnxVerifier;
import dev.loraflow.onnx.WeightQuantization;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.data.JsonlExamples;
import dev.loraflow.core.text.Tokenizer;
import dev.loraflow.platform.events.CheckpointEvent;
import dev.loraflow.platform.events.MergeFailureEvent;
import dev.loraflow.platform.events.MergedModelEvent;
import dev.loraflow.platform.events.ModelLineage;
import dev.loraflow.platform.reliability.Failures;
import dev.loraflow.platform.store.ArtifactIntegrityException;
import dev.loraflow.platform.store.ArtifactStore;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.jboss.logging.Logger;

/**
 * Turns one checkpoint into a served model, or into the reason it is not one: merge into the base (the
 * Hugging Face directory), export that directory to ONNX, verify the graph under ONNX Runtime against
 * the Java forward of the un-merged base + adapter — which checks the merge and the export together —
 * and only then put both into the store. Configured quantized graphs (int8, int4) are exported from the
 * same merged directory, measured against the same reference and stored only within their loss bound. Everything is staged in the work directory first and each
 * store write is atomic, so a crash at any point leaves no partial artifact visible.
 */
public final class CheckpointMerger {

    private static final Logger LOG = Logger.getLogger(CheckpointMerger.class);
    static final String ONNX_FILE = "model.onnx";

    /** What became of a checkpoint: exactly one event, for the merged topic or the failures topic. */
    public sealed interface Outcome {
        String model();

        byte[] encode();
    }

    public record Merged(MergedModelEvent event) implements Outcome {
        @Override
        public String model() {
            return event.model();
        }

        @Override
        public byte[] encode() {
            return event.encode();
        }
    }

    public record Failed(MergeFailureEvent event) implements Outcome {
        @Override
        public String model() {
            return event.model();
        }

        @Override
        public byte[] encode() {
            return event.encode();
        }
    }

    /** A failure with its event fields, thrown inside {@link #merge} and turned into {@link Failed}. */
    private static final class Refused extends Exception {
        final String reason;
        final double maxAbsError;
        final double tolerance;

        Refused(String reason, String message, double maxAbsError, double tolerance) {
            super(message);
            this.reason = reason;
            this.maxAbsError = maxAbsError;
            this.tolerance = tolerance;
        }

        Refused(String reason, String message) {
            this(reason, message, Double.NaN, Double.NaN);
        }
    }

    private final MergerSettings settings;
    private final ArtifactStore store;

    public CheckpointMerger(MergerSettings settings, ArtifactStore store) {
        this.settings = settings;
        this.store = store;
    }

    /**
     * @param previousVersion the model's last announced version, named by a failure event as still in service
     * @throws IOException a transient failure (the work directory, the store, a full disk — see
     *                     {@link Failures#isTransient}): the service's problem, not the checkpoint's, so the
     *                     caller retries rather than announce a failure
     */
    public Outcome merge(CheckpointEvent checkpoint, Long previousVersion) throws IOException {
        String model = checkpoint.jobId();
        ModelLineage lineage = ModelLineage.of(checkpoint);
        Files.createDirectories(settings.workDirectory());
        Path staging = Files.createTempDirectory(settings.workDirectory(), "merge-" + model + "-" + checkpoint.step() + "-");
        try {
            return new Merged(mergeExportVerify(checkpoint, lineage, staging));
        } catch (Refused refused) {
            LOG.warnf("checkpoint %s step %d not merged (%s): %s", model, checkpoint.step(), refused.reason, refused.getMessage());
            return new Failed(new MergeFailureEvent(model, checkpoint.step(), refused.reason, refused.getMessage(),
                    refused.maxAbsError, refused.tolerance, previousVersion, lineage));
        } catch (IOException | RuntimeException e) {
            if (Failures.isTransient(e)) {
                throw e instanceof IOException io ? io : new IOException(Failures.describe(e), e);
            }
            // Not the disk or the store but the work itself failed (the export, ONNX Runtime): it would fail
            // again, so one failure event, and nothing waits for a model that will not come.
            LOG.errorf(e, "checkpoint %s step %d: merging failed", model, checkpoint.step());
            String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            return new Failed(new MergeFailureEvent(model, checkpoint.step(), "error", message, Double.NaN, Double.NaN,
                    previousVersion, lineage));
        } finally {
            deleteTree(staging);
        }
    }

    private MergedModelEvent mergeExportVerify(CheckpointEvent checkpoint, ModelLineage lineage, Path staging)
            throws Refused, IOException {
        Path base = resolveBase(checkpoint.baseModel());
        Path adapterDirectory = openAdapter(checkpoint);
        PeftAdapter adapter;
        try {
            adapter = PeftAdapter.read(adapterDirectory);
        } catch (IOException e) {
            throw new Refused("unreadable_adapter", e.getMessage());
        }

        long start = System.nanoTime();
        Path merged = staging.resolve("merged");
        Path onnx = staging.resolve("onnx").resolve(ONNX_FILE);
        LoraMerge.Options options = new LoraMerge.Options(settings.dtype(), checkpoint.baseModelSha256());
        // Checked before anything is written: a model this process cannot merge, export and verify fails with the
        // check's one line (a warning, no stack trace: the checkpoint is fine, the machine too small for it) rather
        // than an OutOfMemoryError or a full disk part way.
        try {
            LoraMerge.Requirements mergeNeeds = LoraMerge.requirements(base, options);
            mergeNeeds.require(merged, Files.size(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)));
            OnnxExporter.Requirements exportNeeds = OnnxExporter.requirements(base);
            Resources.requireDisk(staging, mergeNeeds.outputBytes() + exportNeeds.diskBytes(),
                    "the merged model and its float32 ONNX graph");
            OnnxVerifier.requireMemory(base, exportNeeds.diskBytes(), "the float32 graph", "give the merger more memory");
        } catch (Resources.InsufficientResourcesException e) {
            throw new Refused("error", e.getMessage());
        }
        try {
            LoraMerge.merge(base, adapter, Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)), merged, options);
        } catch (MergeException e) {
            throw new Refused(e.kind().code(), e.getMessage());
        }
        long merging = System.nanoTime() - start;

        OnnxExporter.requirements(merged).require(onnx);
        OnnxExporter.Result export = OnnxExporter.exportDirectory(merged, null,
                OnnxExporter.Options.defaults().withOpset(settings.opset()), onnx);

        start = System.nanoTime();
        CausalLanguageModel reference = CausalLanguageModel.load(base, adapter.config(), 0);
        reference.loadAdapter(adapter);
        OnnxVerifier.Result check = OnnxVerifier.verify(onnx, reference, OnnxVerifier.Probe.standard(), Map.of(),
                settings.tolerance(), settings.verifyThreads());
        long verifying = System.nanoTime() - start;
        if (!check.passed()) {
            throw new Refused("verification_failed", "the ONNX graph of the merged model does not compute what the"
                    + " base with its adapter computes: " + check.summary(), check.maxAbsError(), check.tolerance());
        }
        settings.fault().afterExport(checkpoint.jobId());
        start = System.nanoTime();
        List<MergedModelEvent.QuantizedGraph> quantized = new ArrayList<>();
        for (WeightQuantization.Precision precision : settings.quantized().precisions()) {
            quantized.add(quantizedGraph(checkpoint, precision, merged, base, reference, staging));
        }
        verifying += System.nanoTime() - start;

        ArtifactStore.Artifact mergedArtifact = store.putDirectory(merged);
        ArtifactStore.Artifact onnxArtifact = store.putDirectory(onnx.getParent());
        return new MergedModelEvent(checkpoint.jobId(), checkpoint.step(), onnxArtifact.uri().toString(),
                onnxArtifact.sha256(), ONNX_FILE, export.modelSha256(), settings.opset(), mergedArtifact.uri().toString(),
                mergedArtifact.sha256(), settings.dtype().toString(),
                new MergedModelEvent.Verification(true, check.maxAbsError(), check.tolerance(), check.rowsChecked(),
                        check.greedyIdentical()),
                lineage, new MergedModelEvent.Timings(merging / 1e9, export.exportNanos() / 1e9, verifying / 1e9), quantized);
    }

    /**
     * Exports the merged model at {@code precision}, checks it against the F32 Java forward of base + adapter
     * (logit error, held-out loss) and puts it into the store when its loss is within the configured bound;
     * a graph beyond it is recorded as refused, with why, and not stored. The F32 graph is served either way.
     */
    private MergedModelEvent.QuantizedGraph quantizedGraph(CheckpointEvent checkpoint, WeightQuantization.Precision precision,
                                                           Path merged, Path base, CausalLanguageModel reference,
                                                           Path staging) throws IOException {
        WeightQuantization quantization = WeightQuantization.of(precision);
        Path onnx = staging.resolve("onnx-" + precision.label()).resolve(ONNX_FILE);
        OnnxExporter.requirements(merged, quantization).require(onnx);
        OnnxExporter.exportDirectory(merged, null,
                OnnxExporter.Options.defaults().withOpset(settings.opset()).withQuantization(quantization), onnx);
        Path tokenizerFile = base.resolve(Tokenizer.FILE_NAME);
        List<Example> heldOut;
        try (Tokenizer tokenizer = Files.isRegularFile(tokenizerFile) ? Tokenizer.load(tokenizerFile) : null) {
            heldOut = JsonlExamples.read(settings.quantized().verifyData(), tokenizer, reference.config().vocabSize());
        }
        double bound = settings.quantized().maxLossIncrease().get(precision);
        OnnxVerifier.QuantizedResult check = OnnxVerifier.verifyQuantized(onnx, reference, heldOut, 0, Map.of(),
                new OnnxVerifier.QuantizedBounds(bound), settings.verifyThreads());
        String label = precision.label();
        if (!check.passed()) {
            LOG.warnf("checkpoint %s step %d: the %s graph is not published: %s", checkpoint.jobId(), checkpoint.step(),
                    label, check.summary());
            return new MergedModelEvent.QuantizedGraph(label, quantization.describe(), false, null, null, null, null,
                    check.probe().maxAbsError(), check.probe().relativeError(), check.f32Loss(), check.graphLoss(),
                    check.lossIncrease(), bound, check.summary());
        }
        ArtifactStore.Artifact artifact = store.putDirectory(onnx.getParent());
        return new MergedModelEvent.QuantizedGraph(label, quantization.describe(), true, artifact.uri().toString(),
                artifact.sha256(), ONNX_FILE, Sha256.of(onnx), check.probe().maxAbsError(), check.probe().relativeError(),
                check.f32Loss(), check.graphLoss(), check.lossIncrease(), bound, null);
    }

    private Path resolveBase(String name) throws Refused {
        try {
            return SafePaths.resolveInside(settings.modelsRoot(), name, "base model");
        } catch (IOException | IllegalArgumentException e) {
            throw new Refused("unknown_base_model", e.getMessage());
        }
    }

    private Path openAdapter(CheckpointEvent checkpoint) throws Refused {
        try {
            return store.open(URI.create(checkpoint.adapterUri()), checkpoint.adapterSha256());
        } catch (ArtifactIntegrityException e) {
            throw new Refused(MergeException.Kind.ARTIFACT_SHA256_MISMATCH.code(), "the adapter artifact does not match"
                    + " its checkpoint event: " + e.getMessage());
        } catch (IOException | IllegalArgumentException e) {
            throw new Refused("unreadable_adapter", e.getMessage());
        }
    }

    static void deleteTree(Path path) {
        try {
            FileTrees.delete(path);
        } catch (IOException e) {
            LOG.warnf("cannot remove %s: %s", path, e.getMessage());
        }
    }
}
