package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.io.Sha256;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.CheckpointWeights;
import dev.loraflow.core.model.ModelConfig;
import dev.loraflow.core.model.ModelLayout;
import dev.loraflow.core.model.RandomModel;
import dev.loraflow.core.model.TinyModels;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.onnx.OnnxExporter.ExternalData;
import dev.loraflow.onnx.OnnxExporter.Options;
import dev.loraflow.onnx.OnnxExporter.Provenance;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The export of a model directory streams: BF16 weights stay mapped and are widened as they are written,
 * each adapted module is merged while its bytes go out, and each file's SHA-256 is taken in the same pass.
 * Its files are the same bytes as the export of the model loaded whole as float32, and its weights the same
 * bytes as those of the model merged whole in memory before writing (what the export did until now).
 */
class StreamingExportTest {

    @TempDir
    Path dir;

    static Stream<Arguments> configs() {
        return Stream.of(TestModels.GPT2, TestModels.LLAMA, TinyModels.PHI3, TinyModels.MISTRAL, TinyModels.GEMMA2)
                .map(config -> Arguments.of(TinyModels.name(config), config));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configs")
    void aStreamedExportIsByteIdenticalToTheExportOfTheModelMergedWholeInMemory(String name, ModelConfig config)
            throws Exception {
        Path base = dir.resolve("base");
        RandomModel.write(config, 3, DType.BF16, base);
        Map<String, float[]> weights = CheckpointWeights.read(base, ModelLayout.of(config));
        Path adapterDirectory = dir.resolve("adapter");
        TestModels.adapted(config, weights, 4).toPeftAdapter().write(adapterDirectory, DType.F32);
        PeftAdapter adapter = PeftAdapter.read(adapterDirectory);
        Options options = Options.defaults().withExternalData(ExternalData.ALWAYS);

        OnnxExporter.Result streamed = OnnxExporter.exportDirectory(base, adapterDirectory, options,
                dir.resolve("streamed").resolve("model.onnx"));

        // The same model loaded whole as float32 arrays.
        CausalLanguageModel whole = CausalLanguageModel.create(config, weights, adapter.config(), 0);
        whole.loadAdapter(adapter);
        Provenance provenance = new Provenance(OnnxExporter.weightsSha256(base), "adapter",
                Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)));
        OnnxExporter.Result inMemory = OnnxExporter.export(whole, weights, options, provenance,
                dir.resolve("in-memory").resolve("model.onnx"));

        // The model merged whole before writing, exported as a plain base: only its metadata differs. (Not where an
        // adapted head is tied to the embedding: a plain base has no head weight of its own to put the merge in.)
        boolean headOfItsOwn = !config.tieWordEmbeddings() || whole.adaptedModules().keySet().stream()
                .noneMatch(path -> path.endsWith(ModelLayout.OUTPUT_HEAD));
        whole.merge();
        Map<String, float[]> mergedWeights = new LinkedHashMap<>(weights);
        for (LoRALinear module : whole.adaptedModules().values()) {
            String canonical = whole.layout().canonicalModulePath(module.name());
            mergedWeights.put(canonical + ".weight", module.weight().clone());
        }
        whole.unmerge();
        OnnxExporter.Result mergedFirst = OnnxExporter.export(CausalLanguageModel.create(config, mergedWeights, null, 0),
                mergedWeights, options, new Provenance(null, null, null), dir.resolve("merged-first").resolve("model.onnx"));

        assertNotNull(streamed.externalData());
        assertEquals(-1, Files.mismatch(streamed.model(), inMemory.model()), name + ": the .onnx files differ");
        assertEquals(-1, Files.mismatch(streamed.externalData(), inMemory.externalData()), name + ": the weights differ");
        if (headOfItsOwn) {
            assertEquals(-1, Files.mismatch(streamed.externalData(), mergedFirst.externalData()),
                    name + ": the weights differ from those merged whole in memory");
        }
        assertTrue(Files.size(streamed.externalData()) > 4L * whole.adaptedModules().size(), "weights were written");
        for (OnnxExporter.Result result : new OnnxExporter.Result[] {streamed, inMemory, mergedFirst}) {
            assertEquals(Sha256.of(result.model()), result.modelSha256());
            assertEquals(Sha256.of(result.externalData()), result.externalDataSha256());
        }
    }

    static Stream<Arguments> quantizedConfigs() {
        WeightQuantization int8 = WeightQuantization.of(WeightQuantization.Precision.INT8).withEmbeddingsInt8(true);
        WeightQuantization int4 = WeightQuantization.of(WeightQuantization.Precision.INT4).withZeroPoints(true);
        return configs().flatMap(arguments -> Stream.of(int8, int4).flatMap(quantization -> Stream.of(false, true)
                .map(unmerged -> Arguments.of(arguments.get()[0], arguments.get()[1], quantization, unmerged))));
    }

    /**
     * A quantized export of mapped BF16 weights quantizes each module from its weight widened (or merged for the
     * moment) one at a time: the same bytes as the quantized export of the model loaded whole as float32.
     */
    @ParameterizedTest(name = "{0} {2} unmerged={3}")
    @MethodSource("quantizedConfigs")
    void aQuantizedExportOfMappedWeightsIsByteIdenticalToThatOfTheModelLoadedWhole(String name, ModelConfig config,
                                                                                 WeightQuantization quantization,
                                                                                 boolean unmerged) throws Exception {
        Path base = dir.resolve("base");
        RandomModel.write(config, 5, DType.BF16, base);
        Map<String, float[]> weights = CheckpointWeights.read(base, ModelLayout.of(config));
        Path adapterDirectory = dir.resolve("adapter");
        TestModels.adapted(config, weights, 6).toPeftAdapter().write(adapterDirectory, DType.F32);
        PeftAdapter adapter = PeftAdapter.read(adapterDirectory);
        Options options = Options.defaults().withExternalData(ExternalData.ALWAYS).withQuantization(quantization)
                .withUnmerged(unmerged);

        OnnxExporter.Result streamed = OnnxExporter.exportDirectory(base, adapterDirectory, options,
                dir.resolve("streamed").resolve("model.onnx"));

        CausalLanguageModel whole = CausalLanguageModel.create(config, weights, adapter.config(), 0);
        whole.loadAdapter(adapter);
        Provenance provenance = new Provenance(OnnxExporter.weightsSha256(base), "adapter",
                Sha256.of(adapterDirectory.resolve(PeftAdapter.WEIGHTS_FILE)));
        OnnxExporter.Result inMemory = OnnxExporter.export(whole, weights, options, provenance,
                dir.resolve("in-memory").resolve("model.onnx"));

        assertEquals(-1, Files.mismatch(streamed.model(), inMemory.model()), name + ": the .onnx files differ");
        assertEquals(-1, Files.mismatch(streamed.externalData(), inMemory.externalData()), name + ": the weights differ");
        assertTrue(whole.adaptedModules().values().stream().noneMatch(LoRALinear::isMerged), "the model is left unmerged");
        assertEquals(Sha256.of(streamed.externalData()), streamed.externalDataSha256());
    }
}
