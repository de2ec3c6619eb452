package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.loraflow.core.data.Example;
import dev.loraflow.core.io.Resources;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.safetensors.DType;
import java.lang.ref.Reference;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Verification in sequence: the Java reference (base + adapter on mapped BF16 weights) runs first and unmaps its
 * weights before ONNX Runtime's session is created, so that an 8 B model needs the larger of the two in memory, not
 * their sum; and it measures exactly what the side-by-side run measured. Held-out examples whose forward cannot fit
 * the heap are refused before anything runs.
 */
class SequentialVerificationTest {

    @TempDir
    Path dir;

    @Test
    void theReferenceUnmapsItsWeightsBeforeTheSessionAndMeasuresWhatTheSideBySideRunMeasured() throws Exception {
        Path maps = Path.of("/proc/self/maps");
        assumeTrue(Files.isReadable(maps), "needs Linux's /proc/self/maps to see what is mapped");
        Path base = dir.resolve("base");
        RandomModel.write(TestModels.LLAMA, 3, DType.BF16, base);
        Path adapterDirectory = dir.resolve("adapter");
        TestModels.adapted(TestModels.LLAMA, CheckpointWeights.read(base, ModelLayout.of(TestModels.LLAMA)), 4)
                .toPeftAdapter().write(adapterDirectory, DType.F32);
        PeftAdapter adapter = PeftAdapter.read(adapterDirectory);
        Path weightsFile = base.resolve("model.safetensors").toRealPath();
        Path onnx = dir.resolve("merged").resolve("model.onnx");
        OnnxExporter.exportDirectory(base, adapterDirectory, OnnxExporter.Options.defaults(), onnx);
        assertFalse(Files.readString(maps).contains(weightsFile.toString()), "the export unmapped the base on return");
        List<Example> heldOut = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            int[] ids = {1 + i, 5, 9 + i, 2, 7, 3 + i, 11};
            heldOut.add(new Example(ids, ids));
        }

        // In sequence: nothing of the reference is mapped once it has run.
        OnnxVerifier.Reference reference = OnnxVerifier.Reference.of(base, adapter, OnnxVerifier.Probe.standard(),
                heldOut, 0);
        assertFalse(Files.readString(maps).contains(weightsFile.toString()),
                "the reference's weights are unmapped before any session opens");
        OnnxVerifier.Result inSequence = OnnxVerifier.verify(onnx, reference, Map.of(), OnnxVerifier.DEFAULT_TOLERANCE, 1);
        OnnxVerifier.QuantizedResult inSequenceLoss = OnnxVerifier.verifyQuantized(onnx, reference, Map.of(),
                new OnnxVerifier.QuantizedBounds(0.01), 1);

        // The model kept loaded (mapped) beside the sessions, as verification ran before: the same figures.
        CausalLanguageModel loaded = CausalLanguageModel.load(base, adapter.config(), 0);
        loaded.loadAdapter(adapter);
        assertTrue(Files.readString(maps).contains(weightsFile.toString()), "a loaded model maps its BF16 weights");
        OnnxVerifier.Result sideBySide = OnnxVerifier.verify(onnx, loaded);
        OnnxVerifier.QuantizedResult sideBySideLoss = OnnxVerifier.verifyQuantized(onnx, loaded, heldOut, 0, Map.of(),
                new OnnxVerifier.QuantizedBounds(0.01), 1);
        Reference.reachabilityFence(loaded);

        assertTrue(sideBySide.passed() && inSequence.passed(), sideBySide.summary() + " / " + inSequence.summary());
        assertEquals(sideBySide.maxAbsError(), inSequence.maxAbsError());
        assertEquals(sideBySide.rowsChecked(), inSequence.rowsChecked());
        assertEquals(sideBySide.greedyIdentical(), inSequence.greedyIdentical());
        assertArrayEquals(sideBySide.javaGreedy(), inSequence.javaGreedy());
        assertEquals(sideBySideLoss.f32Loss(), inSequenceLoss.f32Loss());
        assertEquals(sideBySideLoss.graphLoss(), inSequenceLoss.graphLoss());
        assertEquals(sideBySideLoss.tokens(), inSequenceLoss.tokens());
        assertTrue(inSequenceLoss.tokens() > 0 && inSequenceLoss.passed(), inSequenceLoss.summary());
    }

    @Test
    void heldOutExamplesWhoseForwardCannotFitTheHeapAreRefusedInOneLineBeforeAnythingRuns() throws Exception {
        // a Llama 3-like vocabulary and context: 8 held-out sequences of the whole context would need 8 × 131,072 rows
        // of 32,000 logits, about 134 GB
        DecoderConfig config = DecoderConfig.llama(32000, 64, 128, 1, 2, 2, 32, 131072, 1e-5, 10000, false);
        Path base = dir.resolve("long");
        RandomModel.write(config, 3, DType.BF16, base);
        List<Example> whole = new ArrayList<>();
        List<Example> short8 = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            whole.add(Example.unmasked(new int[config.maxPositions()]));
            short8.add(Example.unmasked(new int[] {1, 2, 3 + i, 4}));
        }

        Resources.InsufficientResourcesException refused = assertThrows(Resources.InsufficientResourcesException.class,
                () -> OnnxVerifier.requireHeldOutHeap(base, null, whole, "shorter examples"));
        assertTrue(refused.getMessage().contains("of Java heap") && refused.getMessage().contains("try shorter examples")
                && !refused.getMessage().contains("\n"), refused.getMessage());
        OnnxVerifier.requireHeldOutHeap(base, null, short8, "shorter examples");
        OnnxVerifier.requireHeldOutHeap(base, null, List.of(), "shorter examples");
    }

    @Test
    void theMemoryToVerifyIsTheLargerOfTheReferencesWeightsAndTheGraphNotTheirSum() throws Exception {
        Path base = dir.resolve("base");
        RandomModel.write(TestModels.LLAMA, 3, DType.BF16, base);
        CheckpointWeights.Footprint footprint = CheckpointWeights.footprint(base, ModelLayout.of(TestModels.LLAMA),
                Quantization.NONE);
        long reference = OnnxVerifier.referenceBytes(base);
        assertEquals(footprint.mappedBytes() + footprint.nativeBytes(), reference);
        assertTrue(reference > 0, "BF16 linear weights are mapped");
        long graph = OnnxExporter.requirements(base).diskBytes();
        assertEquals(Math.max(reference, graph), OnnxVerifier.verificationPeakBytes(reference, graph));
        assertEquals(graph, OnnxVerifier.verificationPeakBytes(reference, graph), "the float32 graph is the larger");
        long int4 = OnnxExporter.requirements(base, WeightQuantization.of(WeightQuantization.Precision.INT4)).diskBytes();
        assertTrue(OnnxVerifier.verificationPeakBytes(reference, int4) < reference + int4);
    }
}
