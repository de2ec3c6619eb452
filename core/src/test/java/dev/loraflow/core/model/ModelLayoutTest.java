package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ModelLayoutTest {

    private final ModelLayout gpt2 = ModelLayout.of(HfConfigs.tinyGpt2());

    @Test
    void listsEveryGpt2TensorInTransformersOrder() {
        List<String> expected = List.of(
                "wte.weight [11, 4] TOKEN_EMBEDDING",
                "wpe.weight [7, 4] POSITION_EMBEDDING",
                "h.0.ln_1.weight [4] NORM_WEIGHT",
                "h.0.ln_1.bias [4] NORM_BIAS",
                "h.0.attn.c_attn.weight [4, 12] LINEAR_WEIGHT",
                "h.0.attn.c_attn.bias [12] LINEAR_BIAS",
                "h.0.attn.c_proj.weight [4, 4] LINEAR_WEIGHT",
                "h.0.attn.c_proj.bias [4] LINEAR_BIAS",
                "h.0.ln_2.weight [4] NORM_WEIGHT",
                "h.0.ln_2.bias [4] NORM_BIAS",
                "h.0.mlp.c_fc.weight [4, 16] LINEAR_WEIGHT",
                "h.0.mlp.c_fc.bias [16] LINEAR_BIAS",
                "h.0.mlp.c_proj.weight [16, 4] LINEAR_WEIGHT",
                "h.0.mlp.c_proj.bias [4] LINEAR_BIAS");
        List<String> actual = gpt2.weights().stream().map(WeightSpec::toString).toList();

        assertEquals(2 + 12 * 2 + 2, actual.size());
        assertEquals(expected, actual.subList(0, expected.size()));
        assertEquals("h.1.ln_1.weight [4] NORM_WEIGHT", actual.get(14));
        assertEquals(List.of("ln_f.weight [4] NORM_WEIGHT", "ln_f.bias [4] NORM_BIAS"), actual.subList(26, 28));
    }

    @Test
    void listsGpt2LinearModulesAsConv1dWithTheTiedHeadLast() {
        List<LinearModule> modules = gpt2.linearModules();

        assertEquals(4 * 2 + 1, modules.size());
        assertEquals(List.of(
                new LinearModule("h.0.attn.c_attn", 4, 12, true, false),
                new LinearModule("h.0.attn.c_proj", 4, 4, true, false),
                new LinearModule("h.0.mlp.c_fc", 4, 16, true, false),
                new LinearModule("h.0.mlp.c_proj", 16, 4, true, false)), modules.subList(0, 4));
        assertEquals(new LinearModule("lm_head", 4, 11, false, true), modules.getLast());
        assertEquals("c_attn", modules.getFirst().baseName());
    }

    @Test
    void listsEveryLlamaTensorWithGroupedQueryShapes() {
        var layout = ModelLayout.of(HfConfigs.tinyLlama(false));
        List<String> actual = layout.weights().stream().map(WeightSpec::toString).toList();

        assertEquals(1 + 9 * 2 + 2, actual.size());
        assertEquals(List.of(
                "model.embed_tokens.weight [13, 8] TOKEN_EMBEDDING",
                "model.layers.0.self_attn.q_proj.weight [8, 8] LINEAR_WEIGHT",
                "model.layers.0.self_attn.k_proj.weight [4, 8] LINEAR_WEIGHT",
                "model.layers.0.self_attn.v_proj.weight [4, 8] LINEAR_WEIGHT",
                "model.layers.0.self_attn.o_proj.weight [8, 8] LINEAR_WEIGHT",
                "model.layers.0.mlp.gate_proj.weight [6, 8] LINEAR_WEIGHT",
                "model.layers.0.mlp.up_proj.weight [6, 8] LINEAR_WEIGHT",
                "model.layers.0.mlp.down_proj.weight [8, 6] LINEAR_WEIGHT",
                "model.layers.0.input_layernorm.weight [8] NORM_WEIGHT",
                "model.layers.0.post_attention_layernorm.weight [8] NORM_WEIGHT",
                "model.layers.1.self_attn.q_proj.weight [8, 8] LINEAR_WEIGHT"), actual.subList(0, 11));
        assertEquals(List.of("model.norm.weight [8] NORM_WEIGHT", "lm_head.weight [13, 8] OUTPUT_HEAD"),
                actual.subList(19, 21));
        assertEquals(new LinearModule("model.layers.0.self_attn.k_proj", 8, 4, false, false), layout.linearModules().get(1));
        assertEquals(new LinearModule("model.layers.0.mlp.down_proj", 6, 8, false, false), layout.linearModules().get(6));
        assertEquals(7 * 2 + 1, layout.linearModules().size());
    }

    @Test
    void tiedLlamaHasNoHeadWeightButKeepsTheHeadModule() {
        var layout = ModelLayout.of(HfConfigs.tinyLlama(true));

        assertEquals(1 + 9 * 2 + 1, layout.weights().size());
        assertEquals("model.norm.weight", layout.weights().getLast().name());
        assertNull(layout.weight("lm_head.weight"));
        assertEquals(new LinearModule("lm_head", 8, 13, false, true), layout.linearModules().getLast());
    }

    @Test
    void countsTheParametersOfRealModels() {
        var gpt2Small = ModelLayout.of(ModelConfig.parse(HfConfigs.GPT2_SMALL, "gpt2"));
        assertEquals(124_439_808L, gpt2Small.weights().stream().mapToLong(WeightSpec::numel).sum());
        var smolLm2 = ModelLayout.of(ModelConfig.parse(HfConfigs.SMOLLM2_135M, "smollm2"));
        assertEquals(134_515_008L, smolLm2.weights().stream().mapToLong(WeightSpec::numel).sum());
        var tinyLlama = ModelLayout.of(ModelConfig.parse(HfConfigs.TINYLLAMA, "tinyllama"));
        assertEquals(1_100_048_384L, tinyLlama.weights().stream().mapToLong(WeightSpec::numel).sum());
    }

    @Test
    void resolvesPrefixedGpt2NamesAndIgnoresMaskBuffers() {
        assertEquals("h.3.mlp.c_fc.weight", gpt2.resolveName("transformer.h.3.mlp.c_fc.weight"));
        assertEquals("h.3.mlp.c_fc.weight", gpt2.resolveName("h.3.mlp.c_fc.weight"));
        assertEquals("wte.weight", gpt2.resolveName("transformer.wte.weight"));
        assertTrue(gpt2.isIgnorable("h.0.attn.bias"));
        assertTrue(gpt2.isIgnorable("transformer.h.11.attn.masked_bias"));
        assertTrue(gpt2.isIgnorable("lm_head.weight"));
        assertFalse(gpt2.isIgnorable("h.0.attn.c_attn.bias"));
        assertFalse(gpt2.isIgnorable("h.0.attn.bias.extra"));

        var llama = ModelLayout.of(HfConfigs.tinyLlama(false));
        assertEquals("transformer.x", llama.resolveName("transformer.x"));
        assertTrue(llama.isIgnorable("model.layers.0.self_attn.rotary_emb.inv_freq"));
        assertFalse(llama.isIgnorable("lm_head.weight"));
        assertTrue(ModelLayout.of(HfConfigs.tinyLlama(true)).isIgnorable("lm_head.weight"));
    }

    @Test
    void validatesACompleteCheckpointInEitherNaming() {
        Map<String, long[]> prefixed = new LinkedHashMap<>();
        for (WeightSpec spec : gpt2.weights()) {
            prefixed.put("transformer." + spec.name(), spec.shape());
        }
        prefixed.put("transformer.h.0.attn.bias", new long[] {1, 1, 7, 7});
        prefixed.put("h.1.attn.masked_bias", new long[] {});

        Map<String, String> names = gpt2.validate(prefixed, "model.safetensors");

        assertEquals(gpt2.weights().size(), names.size());
        assertEquals("transformer.h.1.mlp.c_proj.bias", names.get("h.1.mlp.c_proj.bias"));
        assertEquals("wte.weight", names.keySet().iterator().next());
    }

    @Test
    void reportsEveryMismatchTogether() {
        Map<String, long[]> found = new LinkedHashMap<>();
        for (WeightSpec spec : gpt2.weights()) {
            found.put(spec.name(), spec.shape());
        }
        found.remove("h.1.ln_2.bias");
        found.remove("ln_f.weight");
        found.put("h.0.attn.c_attn.weight", new long[] {12, 4});
        found.put("score.weight", new long[] {2, 4});
        found.put("transformer.wpe.weight", new long[] {7, 4});

        var e = assertThrows(CheckpointLayoutException.class, () -> gpt2.validate(found, "ckpt/model.safetensors"));

        assertEquals("""
                ckpt/model.safetensors does not match the gpt2 layout (5 problems):
                  tensor h.0.attn.c_attn.weight: expected shape [4, 12], found [12, 4]
                  unexpected tensor score.weight [2, 4]
                  tensor wpe.weight found twice, as wpe.weight and transformer.wpe.weight
                  missing tensor h.1.ln_2.bias [4]
                  missing tensor ln_f.weight [4]""", e.getMessage());
    }

    @Test
    void untiedLlamaNeedsItsHead() {
        var layout = ModelLayout.of(HfConfigs.tinyLlama(false));
        Map<String, long[]> found = new LinkedHashMap<>();
        layout.weights().forEach(spec -> found.put(spec.name(), spec.shape()));
        found.remove("lm_head.weight");

        var e = assertThrows(CheckpointLayoutException.class, () -> layout.validate(found, "llama"));
        assertEquals("llama does not match the llama layout (1 problem):\n  missing tensor lm_head.weight [13, 8]",
                e.getMessage());
    }

    @Test
    void mapsModulePathsToPeftAndBack() {
        assertEquals("transformer.h.0.attn.c_attn", gpt2.peftModulePath("h.0.attn.c_attn"));
        assertEquals("lm_head", gpt2.peftModulePath("lm_head"));
        assertEquals("h.0.attn.c_attn", gpt2.canonicalModulePath("transformer.h.0.attn.c_attn"));
        assertEquals("lm_head", gpt2.canonicalModulePath("lm_head"));
        var e = assertThrows(IllegalArgumentException.class, () -> gpt2.canonicalModulePath("h.0.attn.c_attn"));
        assertEquals("'h.0.attn.c_attn' is not a gpt2 module path; those start with 'transformer.' or are 'lm_head'",
                e.getMessage());

        var llama = ModelLayout.of(HfConfigs.tinyLlama(true));
        assertEquals("model.layers.0.self_attn.q_proj", llama.peftModulePath("model.layers.0.self_attn.q_proj"));
        assertEquals("model.layers.0.self_attn.q_proj", llama.canonicalModulePath("model.layers.0.self_attn.q_proj"));
        assertThrows(IllegalArgumentException.class, () -> llama.canonicalModulePath("layers.0.self_attn.q_proj"));
        for (LinearModule module : llama.linearModules()) {
            assertEquals(module.path(), llama.canonicalModulePath(llama.peftModulePath(module.path())));
        }
        for (LinearModule module : gpt2.linearModules()) {
            assertEquals(module.path(), gpt2.canonicalModulePath(gpt2.peftModulePath(module.path())));
        }
    }
}
