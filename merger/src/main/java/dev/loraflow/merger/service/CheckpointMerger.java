package dev.loraflow.merger.service;

import dev.loraflow.core.io.FileTrees;
import dev.loraflow.core.io.Resources;
import dev.loraflow.platform.store.SafePaths;
import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.model.ModelConfig;
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
import java.util.Optional;
import org.jboss.logging.Logger;

/**
 * Turns one checkpoint into a served model, or into the reason it is not one: merge into the base (the
 * Hugging Face directory), export that directory to the configured ONNX graphs ({@code loraflow.merger.graphs}:
 * f32, int8, int4), verify each under ONNX Runtime against the Java forward of the un-merged base + adapter —
 * which checks the merge and the export together — and only then put them into the store: the F32 graph within the
 * logit tolerance, a quantized one within its held-out loss bound. The event names the most precise graph published
 * for serving. Everything is staged in the work directory first and each store write is atomic, so a crash at any
 * point leaves no partial artifact visible.
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
        } catch (Resources.InsufficientResourcesException e) {
            // The machine, not the checkpoint: one line, no stack trace, and nothing waits for a model that will not come.
            LOG.warnf("checkpoint %s step %d not merged: %s", model, checkpoint.step(), e.getMessage());
            return new Failed(new MergeFailureEvent(model, checkpoint.step(), "error", e.getMessage(), Double.NaN,
                    Double.NaN, previousVersion, lineage));
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

        MergerSettings.Graphs graphs = settings.graphs();
        long start = System.nanoTime();
        Path merged = staging.resolve("merged");
        LoraMerge.Options options = new LoraMerge.Options(settings.dtype(), checkpoint.baseModelSha256());
        // Checked before anything is written: a model this process cannot merge, export and verify fails with the
        // check's one line (a warning, no stack trace: the checkpoint is fine, the machine too small for it) rather
        // than an OutOfMemoryError or a full disk part way. Only the configured graphs are counted: an 8 B model
        // published as int4 alone writes its merged model and 8.6 GB, not the 32 GB of a float32 graph.
        LoraMerge.Requirements mergeNeeds = LoraMerge.requirements(base, options);
        mergeNeeds.require(merged, Files.size(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)));
        long graphBytes = 0;
        long largestGraph = 0;
        long exportHeap = 0;
        for (WeightQuantization.Precision precision : graphs.precisions()) {
            OnnxExporter.Requirements export = OnnxExporter.requirements(base, WeightQuantization.of(precision));
            graphBytes += export.diskBytes();
            largestGraph = Math.max(largestGraph, export.diskBytes());
            exportHeap = Math.max(exportHeap, export.heapBytes());
        }
        Resources.requireHeap(exportHeap, "to export the " + graphs.describe() + " graphs: the float32 tensors"
                + " held, the largest one merged, the quantized weights and the graph", "give the merger a larger"
                + " heap (-Xmx; ./loraflow up: LORAFLOW_JAVA_OPTS)");
        // Staged: the merged model and one graph at a time (each deleted once stored). Stored: the model and every
        // graph, on the same disk as the staging where the store is a local directory there.
        List<Resources.DiskNeed> disk = new ArrayList<>(List.of(new Resources.DiskNeed(staging,
                mergeNeeds.outputBytes() + largestGraph, "the merged model and its largest ONNX graph, staged")));
        Optional<Path> storeRoot = store.localRoot();
        if (storeRoot.isPresent()) {
            disk.add(new Resources.DiskNeed(storeRoot.get(), mergeNeeds.outputBytes() + graphBytes,
                    "the merged model and its " + graphs.describe() + " ONNX graphs, stored"));
        }
        Resources.requireDisk(disk);
        OnnxVerifier.requireMemory(base, largestGraph, "the largest graph", "give the merger more memory"
                + (graphs.includesF32() ? ", or publish a quantized graph alone (loraflow.merger.graphs=int4)" : ""));
        List<Example> heldOut = graphs.includesQuantized() ? heldOut(base, graphs.verifyData()) : List.of();
        OnnxVerifier.requireHeldOutHeap(base, adapter.config(), heldOut,
                "shorter held-out examples (loraflow.merger.quantize.verify-data)");
        try {
            LoraMerge.merge(base, adapter, Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)), merged, options);
        } catch (MergeException e) {
            throw new Refused(e.kind().code(), e.getMessage());
        }
        long merging = System.nanoTime() - start;

        // The Java forward of base + adapter runs first and its weights are released before any ONNX Runtime session
        // opens: only one of the two is in memory at a time.
        start = System.nanoTime();
        OnnxVerifier.Reference reference = OnnxVerifier.Reference.of(base, adapter, OnnxVerifier.Probe.standard(),
                heldOut, 0);
        long verifying = System.nanoTime() - start;
        long exporting = 0;
        MergedModelEvent.Verification verification = null;
        ArtifactStore.Artifact served = null;
        String servedFileSha256 = null;
        String servedPrecision = null;
        Refused lastRefusal = null;
        List<MergedModelEvent.QuantizedGraph> quantized = new ArrayList<>();
        for (WeightQuantization.Precision precision : graphs.precisions()) {
            WeightQuantization quantization = WeightQuantization.of(precision);
            Path onnx = staging.resolve("onnx-" + precision.label()).resolve(ONNX_FILE);
            OnnxExporter.Result export = OnnxExporter.exportDirectory(merged, null,
                    OnnxExporter.Options.defaults().withOpset(settings.opset()).withQuantization(quantization), onnx);
            exporting += export.exportNanos();
            start = System.nanoTime();
            if (precision == WeightQuantization.Precision.F32) {
                OnnxVerifier.Result check = OnnxVerifier.verify(onnx, reference, Map.of(), settings.tolerance(),
                        settings.verifyThreads());
                verifying += System.nanoTime() - start;
                if (!check.passed()) {
                    throw new Refused("verification_failed", "the ONNX graph of the merged model does not compute what"
                            + " the base with its adapter computes: " + check.summary(), check.maxAbsError(),
                            check.tolerance());
                }
                settings.fault().afterExport(checkpoint.jobId());
                served = store.putDirectory(onnx.getParent());
                servedFileSha256 = export.modelSha256();
                servedPrecision = MergedModelEvent.F32;
                verification = new MergedModelEvent.Verification(true, check.maxAbsError(), check.tolerance(),
                        check.rowsChecked(), check.greedyIdentical());
            } else {
                OnnxVerifier.QuantizedResult check = OnnxVerifier.verifyQuantized(onnx, reference, Map.of(),
                        new OnnxVerifier.QuantizedBounds(graphs.maxLossIncrease().get(precision)), settings.verifyThreads());
                verifying += System.nanoTime() - start;
                if (check.passed() && served == null) {
                    settings.fault().afterExport(checkpoint.jobId());
                }
                MergedModelEvent.QuantizedGraph graph = quantizedGraph(checkpoint, quantization, onnx, check);
                quantized.add(graph);
                if (!graph.published()) {
                    lastRefusal = new Refused("verification_failed", "the " + precision.label() + " graph of the merged"
                            + " model is not within its bound: " + check.summary(), check.probe().maxAbsError(), Double.NaN);
                } else if (served == null) {
                    served = new ArtifactStore.Artifact(URI.create(graph.onnxUri()), graph.onnxSha256());
                    servedFileSha256 = graph.onnxFileSha256();
                    servedPrecision = precision.label();
                    verification = new MergedModelEvent.Verification(true, check.probe().maxAbsError(), Double.NaN,
                            check.probe().rowsChecked(), check.probe().greedyIdentical());
                }
            }
            // Stored (or refused): the next graph's export gets its disk.
            deleteTree(onnx.getParent());
        }
        if (served == null) {
            // Every configured graph was quantized and none kept its loss: nothing to serve, so no model is announced.
            throw lastRefusal;
        }
        ArtifactStore.Artifact mergedArtifact = store.putDirectory(merged);
        return new MergedModelEvent(checkpoint.jobId(), checkpoint.step(), served.uri().toString(), served.sha256(),
                ONNX_FILE, servedFileSha256, settings.opset(), mergedArtifact.uri().toString(), mergedArtifact.sha256(),
                settings.dtype().toString(), verification, lineage,
                new MergedModelEvent.Timings(merging / 1e9, exporting / 1e9, verifying / 1e9), quantized, servedPrecision);
    }

    /** The held-out examples quantized graphs are measured on, tokenized as the base's tokenizer does (ids without). */
    private static List<Example> heldOut(Path base, Path verifyData) throws IOException {
        Path tokenizerFile = base.resolve(Tokenizer.FILE_NAME);
        try (Tokenizer tokenizer = Files.isRegularFile(tokenizerFile) ? Tokenizer.load(tokenizerFile) : null) {
            return JsonlExamples.read(verifyData, tokenizer, ModelConfig.read(base.resolve("config.json")).vocabSize());
        }
    }

    /**
     * A quantized graph checked against the F32 Java forward of base + adapter (logit error, held-out loss): put into
     * the store when its loss is within the configured bound; a graph beyond it is recorded as refused, with why, and
     * not stored.
     */
    private MergedModelEvent.QuantizedGraph quantizedGraph(CheckpointEvent checkpoint, WeightQuantization quantization,
                                                           Path onnx, OnnxVerifier.QuantizedResult check)
            throws IOException {
        String label = quantization.precision().label();
        double bound = check.bounds().maxLossIncrease();
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
