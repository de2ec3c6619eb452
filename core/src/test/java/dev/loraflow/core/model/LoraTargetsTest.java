package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraAdapterConfig.TargetModules;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class LoraTargetsTest {

    private final ModelLayout gpt2 = ModelLayout.of(HfConfigs.tinyGpt2());
    private final ModelLayout llama = ModelLayout.of(HfConfigs.tinyLlama(false));

    @Test
    void defaultsToCAttnForGpt2WithFanInFanOut() {
        List<LoraTarget> targets = LoraTargets.select(gpt2, LoraAdapterConfig.builder().build());

        assertEquals(List.of(
                new LoraTarget("transformer.h.0.attn.c_attn", 4, 12, true, 8, 8, 1),
                new LoraTarget("transformer.h.1.attn.c_attn", 4, 12, true, 8, 8, 1)), targets);
    }

    @Test
    void defaultsToQueryAndValueForLlama() {
        List<LoraTarget> targets = LoraTargets.select(llama, LoraAdapterConfig.builder().r(4).loraAlpha(16).build());

        assertEquals(List.of(
                new LoraTarget("model.layers.0.self_attn.q_proj", 8, 8, false, 4, 16, 4),
                new LoraTarget("model.layers.0.self_attn.v_proj", 8, 4, false, 4, 16, 4),
                new LoraTarget("model.layers.1.self_attn.q_proj", 8, 8, false, 4, 16, 4),
                new LoraTarget("model.layers.1.self_attn.v_proj", 8, 4, false, 4, 16, 4)), targets);
    }

    @Test
    void namesMatchTheFullPathOrADottedSuffix() {
        assertEquals(List.of("transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
                        "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"),
                paths(gpt2, names("c_proj")));
        assertEquals(List.of("transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"), paths(gpt2, names("mlp.c_proj")));
        assertEquals(List.of("transformer.h.1.attn.c_attn"), paths(gpt2, names("transformer.h.1.attn.c_attn")));
        assertEquals(List.of("lm_head"), paths(gpt2, names("lm_head")));
        assertEquals(List.of("model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj",
                        "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.down_proj"),
                paths(llama, names("gate_proj", "down_proj", "no_such_proj")));
    }

    @Test
    void namesOfNonLinearModulesOrPartialComponentsMatchNothing() {
        // "attn" is GPT2Attention, not a linear layer; "_attn" is not a whole path component.
        var e = assertThrows(IllegalArgumentException.class, () -> LoraTargets.select(gpt2, names("attn", "_attn", "ln_1")));
        assertEquals("Target modules [attn, _attn, ln_1] not found in the base model (gpt2); its linear modules are"
                + " c_attn, c_proj, c_fc, lm_head, e.g. transformer.h.0.attn.c_attn", e.getMessage());
        // An unprefixed GPT-2 path still matches, as a dotted suffix of PEFT's path.
        assertEquals(List.of("transformer.h.0.attn.c_attn"), paths(gpt2, names("h.0.attn.c_attn")));
    }

    @Test
    void regexMustMatchTheWholePath() {
        assertEquals(List.of("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                        "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"),
                paths(llama, regex(".*\\.(q_proj|v_proj)")));
        assertEquals(List.of("model.layers.1.mlp.up_proj"), paths(llama, regex("model\\.layers\\.1\\..*up_proj")));
        assertEquals(List.of("lm_head"), paths(llama, regex("lm_.*")));

        var e = assertThrows(IllegalArgumentException.class, () -> LoraTargets.select(llama, regex("q_proj")));
        assertEquals("Target modules 'q_proj' not found in the base model (llama); its linear modules are q_proj, k_proj,"
                + " v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head, e.g. model.layers.0.self_attn.q_proj",
                e.getMessage());
    }

    @Test
    void allLinearLeavesOutTheOutputHead() {
        var allLinear = LoraAdapterConfig.builder().targetModules(new TargetModules.AllLinear()).build();

        List<String> gpt2Paths = paths(gpt2, allLinear);
        assertEquals(8, gpt2Paths.size());
        assertEquals(List.of("transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc",
                "transformer.h.0.mlp.c_proj"), gpt2Paths.subList(0, 4));

        List<LoraTarget> llamaTargets = LoraTargets.select(ModelLayout.of(HfConfigs.tinyLlama(true)), allLinear);
        assertEquals(14, llamaTargets.size());
        assertEquals(new LoraTarget("model.layers.1.mlp.down_proj", 6, 8, false, 8, 8, 1), llamaTargets.getLast());
    }

    @Test
    void layersToTransformKeepsTheListedLayers() {
        var onlyLayerOne = LoraAdapterConfig.builder().layersToTransform(List.of(1));

        assertEquals(List.of("transformer.h.1.attn.c_attn"), paths(gpt2, onlyLayerOne.build()));
        assertEquals(List.of("model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"),
                paths(llama, onlyLayerOne.layersPattern(List.of("layers")).build()));
        assertEquals(List.of("transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_fc",
                        "transformer.h.1.mlp.c_proj"),
                paths(gpt2, onlyLayerOne.targetModules(new TargetModules.AllLinear()).layersPattern(List.of("h")).build()));
    }

    @Test
    void layersToTransformFollowsPeftsQuirks() {
        // A name equal to the whole path bypasses the layer filter in PEFT's check_target_module_exists.
        var exactName = LoraAdapterConfig.builder().targetModules("transformer.h.0.attn.c_attn", "c_attn")
                .layersToTransform(List.of(1)).build();
        assertEquals(List.of("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"), paths(gpt2, exactName));

        // lm_head has no layer index, yet its name is its whole path, so it stays selected.
        var head = LoraAdapterConfig.builder().targetModules("c_fc", "lm_head").layersToTransform(List.of(0)).build();
        assertEquals(List.of("transformer.h.0.mlp.c_fc", "lm_head"), paths(gpt2, head));

        var wrongPattern = LoraAdapterConfig.builder().layersToTransform(List.of(0, 1)).layersPattern(List.of("h")).build();
        var e = assertThrows(IllegalArgumentException.class, () -> LoraTargets.select(llama, wrongPattern));
        assertEquals("Target modules [q_proj, v_proj] not found in the base model (llama) within layers_to_transform"
                + " [0, 1] and layers_pattern [h]; its linear modules are q_proj, k_proj, v_proj, o_proj, gate_proj,"
                + " up_proj, down_proj, lm_head, e.g. model.layers.0.self_attn.q_proj", e.getMessage());

        var missingLayer = LoraAdapterConfig.builder().layersToTransform(List.of(7)).build();
        assertThrows(IllegalArgumentException.class, () -> LoraTargets.select(gpt2, missingLayer));
    }

    @Test
    void rankAndAlphaPatternsApplyPerModule() {
        var config = LoraAdapterConfig.builder().r(8).loraAlpha(16)
                .targetModules(new TargetModules.AllLinear())
                .rankPattern(Map.of("q_proj", 16, "layers.1.mlp.up_proj", 2))
                .alphaPattern(Map.of("v_proj", 32.0))
                .build();

        List<LoraTarget> targets = LoraTargets.select(llama, config);

        assertEquals(new LoraTarget("model.layers.0.self_attn.q_proj", 8, 8, false, 16, 16, 1), targets.get(0));
        assertEquals(new LoraTarget("model.layers.0.self_attn.k_proj", 8, 4, false, 8, 16, 2), targets.get(1));
        assertEquals(new LoraTarget("model.layers.0.self_attn.v_proj", 8, 4, false, 8, 32, 4), targets.get(2));
        assertEquals(new LoraTarget("model.layers.0.mlp.up_proj", 8, 6, false, 8, 16, 2), targets.get(5));
        assertEquals(new LoraTarget("model.layers.1.mlp.up_proj", 8, 6, false, 2, 16, 8), targets.get(12));
    }

    @Test
    void rsLoraScalesByTheSquareRootOfTheRank() {
        var config = LoraAdapterConfig.builder().r(16).loraAlpha(8).useRslora(true)
                .rankPattern(Map.of("v_proj", 4)).build();

        List<LoraTarget> targets = LoraTargets.select(llama, config);

        assertEquals(2.0, targets.get(0).scaling());
        assertEquals(4.0, targets.get(1).scaling());
        assertEquals(4, targets.get(1).rank());
    }

    @Test
    void fanInFanOutFollowsTheModuleNotTheConfig() {
        var config = LoraAdapterConfig.builder().fanInFanOut(true).build();
        assertEquals(false, LoraTargets.select(llama, config).getFirst().fanInFanOut());
        var gpt2Config = LoraAdapterConfig.builder().fanInFanOut(false).build();
        assertEquals(true, LoraTargets.select(gpt2, gpt2Config).getFirst().fanInFanOut());
    }

    @Test
    void readsTargetsFromAnAdapterConfigAsPeftWritesIt() throws Exception {
        var config = LoraAdapterConfig.parse("adapter_config.json", """
                {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["c_attn", "c_fc"],
                 "layers_to_transform": [0], "layers_pattern": "h", "rank_pattern": {"c_fc": 2}}""");

        assertEquals(List.of(
                new LoraTarget("transformer.h.0.attn.c_attn", 4, 12, true, 4, 8, 2),
                new LoraTarget("transformer.h.0.mlp.c_fc", 4, 16, true, 2, 8, 4)), LoraTargets.select(gpt2, config));
    }

    @Test
    void excludeModulesRemovesModulesBeforeTargeting() throws Exception {
        var excludedByName = LoraAdapterConfig.parse("adapter_config.json", """
                {"peft_type": "LORA", "target_modules": "all-linear", "exclude_modules": ["attn.c_proj", "transformer.h.1.mlp.c_fc"]}""");
        assertEquals(List.of("transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj",
                        "transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_proj"),
                paths(gpt2, excludedByName));

        var excludedByRegex = LoraAdapterConfig.parse("adapter_config.json", """
                {"peft_type": "LORA", "exclude_modules": ".*layers\\\\.0\\\\..*"}""");
        assertEquals(List.of("model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"),
                paths(llama, excludedByRegex));

        var everything = LoraAdapterConfig.parse("adapter_config.json", """
                {"peft_type": "LORA", "target_modules": ["c_attn"], "exclude_modules": "transformer\\\\.h\\\\..*"}""");
        var e = assertThrows(IllegalArgumentException.class, () -> LoraTargets.select(gpt2, everything));
        assertEquals("Target modules [c_attn] not found in the base model (gpt2) after exclude_modules"
                + " \"transformer\\\\.h\\\\..*\"; its linear modules are c_attn, c_proj, c_fc, lm_head,"
                + " e.g. transformer.h.0.attn.c_attn", e.getMessage());
    }

    @Test
    void nullExcludeModulesAsPeftWritesItExcludesNothing() throws Exception {
        var config = LoraAdapterConfig.parse("adapter_config.json", """
                {"peft_type": "LORA", "target_modules": ["o_proj"], "exclude_modules": null}""");
        assertEquals(List.of("model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj"), paths(llama, config));

        var missing = LoraAdapterConfig.parse("adapter_config.json", """
                {"peft_type": "LORA", "target_modules": ["out_proj"], "exclude_modules": null}""");
        var e = assertThrows(IllegalArgumentException.class, () -> LoraTargets.select(gpt2, missing));
        assertEquals("Target modules [out_proj] not found in the base model (gpt2); its linear modules are c_attn,"
                + " c_proj, c_fc, lm_head, e.g. transformer.h.0.attn.c_attn", e.getMessage());
    }

    private static LoraAdapterConfig names(String... names) {
        return LoraAdapterConfig.builder().targetModules(names).build();
    }

    private static LoraAdapterConfig regex(String pattern) {
        return LoraAdapterConfig.builder().targetModules(new TargetModules.Regex(pattern)).build();
    }

    private static List<String> paths(ModelLayout layout, LoraAdapterConfig config) {
        return LoraTargets.select(layout, config).stream().map(LoraTarget::modulePath).toList();
    }
}
