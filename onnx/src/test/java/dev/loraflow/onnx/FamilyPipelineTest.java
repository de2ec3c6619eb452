package dev.loraflow.onnx;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loraflow.core.data.BatchSampler;
import dev.loraflow.core.data.Example;
import dev.loraflow.core.generate.Generator;
import dev.loraflow.core.generate.SamplingSettings;
import dev.loraflow.core.lora.LoRALinear;
import dev.loraflow.core.merge.LoraMerge;
import dev.loraflow.core.merge.MergeFixtures;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.model.DecoderConfig;
import dev.loraflow.core.model.TinyModels;
import dev.loraflow.core.optim.AdamW;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.safetensors.DType;
import dev.loraflow.core.train.LearningRateSchedule;
import dev.loraflow.core.train.Trainer;
import dev.loraflow.core.train.TrainingSettings;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Each decoder family through the whole local path, as the CLI runs it: a Hugging Face base directory,
 * LoRA training, the PEFT adapter, merge into a new directory, ONNX export with a KV cache verified
 * against the merged model's Java forward, and an un-merged export fed the adapter at run time verified
 * against the base with the adapter loaded.
 */
class FamilyPipelineTest {

    @TempDir
    Path temp;

    static Stream<Arguments> families() {
        return TinyModels.DECODER_FAMILIES.stream().map(config -> Arguments.of(TinyModels.name(config), config));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void trainMergeExportVerify(String name, DecoderConfig config) throws IOException {
        Path base = MergeFixtures.writeBase(temp.resolve("base"), config, MergeFixtures.weights(config, 1), DType.F32,
                false);
        // PEFT's default target_modules for the model_type (phi3: loraflow's qkv_proj), plus the MLP's down_proj.
        LoraAdapterConfig lora = LoraAdapterConfig.builder().r(4).loraAlpha(8).build();
        CausalLanguageModel model = CausalLanguageModel.load(base, lora, 2);
        TrainingSettings settings = new TrainingSettings(4, 4, 10, 1,
                new LearningRateSchedule(LearningRateSchedule.Shape.CONSTANT, 5e-2, 0, 4),
                new AdamW.Settings(0.9f, 0.999f, 1e-8f, 0f), 1.0, 3);
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            int[] ids = TinyModels.randomIds(10, config.vocabSize(), 100 + i);
            data.add(new Example(ids, ids));
        }
        Trainer trainer = new Trainer(model, settings, Trainer.fingerprint(data));
        BatchSampler sampler = new BatchSampler(data, settings.batchSize(), settings.seqLen(), 0, settings.seed(), 0);
        while (!trainer.finished()) {
            trainer.step(sampler);
        }
        assertTrue(model.adaptedModules().values().stream().map(LoRALinear::loraB)
                .anyMatch(b -> maxAbs(b.value()) > 1e-3), name + ": training moved B");
        Path adapterDir = temp.resolve("adapter");
        trainer.save(adapterDir);

        Path merged = LoraMerge.mergeDirectory(base, adapterDir, temp.resolve("merged"), LoraMerge.Options.defaults())
                .directory();
        CausalLanguageModel mergedModel = CausalLanguageModel.load(merged, null, 0);
        int[] prompt = TinyModels.randomIds(6, config.vocabSize(), 9);
        assertArrayEquals(greedy(model, prompt), greedy(mergedModel, prompt), name + ": merged generates as adapted");

        Path mergedOnnx = OnnxExporter.exportDirectory(merged, null, OnnxExporter.Options.defaults(),
                temp.resolve("merged-onnx/model.onnx")).model();
        OnnxVerifier.Result mergedCheck = OnnxVerifier.verify(mergedOnnx, mergedModel);
        assertTrue(mergedCheck.passed(), name + " merged: " + mergedCheck.summary());

        Path unmergedOnnx = OnnxExporter.exportDirectory(base, adapterDir,
                OnnxExporter.Options.defaults().withUnmerged(true), temp.resolve("unmerged-onnx/model.onnx")).model();
        PeftAdapter adapter = PeftAdapter.read(adapterDir);
        CausalLanguageModel withAdapter = CausalLanguageModel.load(base, adapter.config(), 0);
        withAdapter.loadAdapter(adapter);
        OnnxVerifier.Result unmergedCheck = OnnxVerifier.verify(unmergedOnnx, withAdapter,
                OnnxVerifier.Probe.standard(), LoraInputs.of(adapter), OnnxVerifier.DEFAULT_TOLERANCE, 1);
        assertTrue(unmergedCheck.passed(), name + " un-merged with the adapter: " + unmergedCheck.summary());
    }

    private static int[] greedy(CausalLanguageModel model, int[] prompt) {
        return Generator.generate(model, prompt, SamplingSettings.greedy(8, Set.of())).tokens();
    }

    private static double maxAbs(float[] values) {
        double max = 0;
        for (float value : values) {
            max = Math.max(max, Math.abs(value));
        }
        return max;
    }
}
