package dev.loraflow.core.peft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.TextNode;
import dev.loraflow.core.peft.LoraAdapterConfig.Bias;
import dev.loraflow.core.peft.LoraAdapterConfig.InitLoraWeights;
import dev.loraflow.core.peft.LoraAdapterConfig.TargetModules;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PeftConfigTest {

    @TempDir
    Path dir;

    /**
     * adapter_config.json of the public adapter Iamjuhwan/HY-MT1.5-yoruba-pidgin-lora as PEFT 0.18.1
     * saved it, unchanged.
     */
    private static String peft0181Config() throws IOException {
        try (InputStream in = PeftConfigTest.class.getResourceAsStream("adapter_config_peft_0_18_1.json")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static LoraAdapterConfig parse(String json) throws PeftFormatException {
        return LoraAdapterConfig.parse("adapter_config.json", json);
    }

    private static String rejection(String json) {
        return assertThrows(PeftFormatException.class, () -> parse(json)).getMessage();
    }

    @Test
    void readsAConfigAsPeft018WritesIt() throws IOException {
        LoraAdapterConfig config = parse(peft0181Config());
        assertEquals("CAUSAL_LM", config.taskType());
        assertEquals(16, config.r());
        assertEquals(32.0, config.loraAlpha());
        assertEquals(0.05, config.loraDropout());
        assertEquals(new TargetModules.Names(List.of("q_proj", "k_proj", "up_proj", "v_proj", "gate_proj", "o_proj", "down_proj")),
                config.targetModules());
        assertEquals(Bias.NONE, config.bias());
        assertEquals("tencent/HY-MT1.5-1.8B", config.baseModelNameOrPath());
        assertEquals("0.18.1", config.peftVersion());
        assertTrue(config.inferenceMode());
        assertFalse(config.fanInFanOut());
        assertFalse(config.useRslora());
        assertEquals(new InitLoraWeights.Default(true), config.initLoraWeights());
        assertTrue(config.rankPattern().isEmpty());
        assertTrue(config.layersToTransform().isEmpty());
        assertTrue(config.otherKeys().keySet().containsAll(Set.of("megatron_config", "megatron_core", "loftq_config",
                "layer_replication", "lora_bias", "eva_config", "exclude_modules", "corda_config", "qalora_group_size",
                "target_parameters", "trainable_token_indices", "use_qalora", "alora_invocation_tokens", "arrow_config",
                "ensure_weight_tying", "auto_mapping")));
        assertEquals(2.0, config.scaling("model.layers.3.mlp.down_proj"));
    }

    @Test
    void rewritesAPeftConfigByteForByte() throws IOException {
        String original = peft0181Config();
        assertEquals(original, parse(original).toJson());
    }

    @Test
    void writesSortedKeysWithTwoSpaceIndentLikePeft() throws IOException {
        LoraAdapterConfig config = LoraAdapterConfig.builder()
                .r(4)
                .loraAlpha(16)
                .loraDropout(0.05)
                .targetModules("c_attn", "c_proj")
                .fanInFanOut(true)
                .baseModelNameOrPath("openai-community/gpt2")
                .rankPattern(Map.of("c_proj", 2))
                .alphaPattern(Map.of("c_proj", 2.5))
                .build();
        String expected = """
                {
                  "alpha_pattern": {
                    "c_proj": 2.5
                  },
                  "base_model_name_or_path": "openai-community/gpt2",
                  "bias": "none",
                  "fan_in_fan_out": true,
                  "inference_mode": false,
                  "init_lora_weights": true,
                  "layers_pattern": null,
                  "layers_to_transform": null,
                  "lora_alpha": 16,
                  "lora_dropout": 0.05,
                  "modules_to_save": null,
                  "peft_type": "LORA",
                  "r": 4,
                  "rank_pattern": {
                    "c_proj": 2
                  },
                  "revision": null,
                  "target_modules": [
                    "c_attn",
                    "c_proj"
                  ],
                  "task_type": "CAUSAL_LM",
                  "use_dora": false,
                  "use_rslora": false
                }""";
        assertEquals(expected, config.toJson());
        Path file = dir.resolve("adapter_config.json");
        config.write(file);
        assertEquals(expected, Files.readString(file));
        assertEquals(config, LoraAdapterConfig.read(file));
    }

    @Test
    void minimalConfigGetsPeftDefaults() throws IOException {
        LoraAdapterConfig config = parse("{\"peft_type\": \"LORA\"}");
        assertEquals("CAUSAL_LM", config.taskType());
        assertEquals(8, config.r());
        assertEquals(8.0, config.loraAlpha());
        assertEquals(0.0, config.loraDropout());
        assertEquals(new TargetModules.ArchitectureDefault(), config.targetModules());
        assertEquals(Bias.NONE, config.bias());
        assertNull(config.peftVersion());
        assertFalse(config.toJson().contains("peft_version"), "older PEFT releases reject unknown keys");
        assertEquals(1.0, config.scaling("transformer.h.0.attn.c_attn"));
    }

    @Test
    void toleratesOlderConfigs() throws IOException {
        // The shape PEFT 0.10 wrote for a BERT adapter: task_type null, auto_mapping as an object.
        LoraAdapterConfig config = parse("""
                {"alpha_pattern": {}, "auto_mapping": {"base_model_class": "BertModel",
                 "parent_library": "transformers.models.bert.modeling_bert"}, "base_model_name_or_path": "bert-base-uncased",
                 "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
                 "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
                 "lora_alpha": 8, "lora_dropout": 0.0, "megatron_config": null, "megatron_core": "megatron.core",
                 "modules_to_save": null, "peft_type": "LORA", "r": 8, "rank_pattern": {}, "revision": null,
                 "target_modules": ["query", "value"], "task_type": null, "use_dora": false, "use_rslora": false}""");
        assertNull(config.taskType());
        assertEquals("BertModel", config.otherKeys().get("auto_mapping").get("base_model_class").textValue());
        assertTrue(config.toJson().contains("\"auto_mapping\": {\n    \"base_model_class\": \"BertModel\","));
    }

    @Test
    void targetModulesKeepTheirForm() throws IOException {
        String regex = ".*\\\\.(q_proj|v_proj)";
        LoraAdapterConfig fromRegex = parse("{\"peft_type\": \"LORA\", \"target_modules\": \"" + regex + "\"}");
        assertEquals(new TargetModules.Regex(".*\\.(q_proj|v_proj)"), fromRegex.targetModules());
        assertTrue(fromRegex.toJson().contains("\"target_modules\": \"" + regex + "\","));

        LoraAdapterConfig allLinear = parse("{\"peft_type\": \"LORA\", \"target_modules\": \"all-linear\"}");
        assertEquals(new TargetModules.AllLinear(), allLinear.targetModules());
        assertTrue(allLinear.toJson().contains("\"target_modules\": \"all-linear\","));

        LoraAdapterConfig unspecified = parse("{\"peft_type\": \"LORA\", \"target_modules\": null}");
        assertTrue(unspecified.toJson().contains("\"target_modules\": null,"));

        LoraAdapterConfig single = parse("{\"peft_type\": \"LORA\", \"target_modules\": [\"c_attn\"]}");
        assertEquals(new TargetModules.Names(List.of("c_attn")), single.targetModules());
    }

    @Test
    void layerSelectionAcceptsBothPeftForms() throws IOException {
        LoraAdapterConfig config = parse("{\"peft_type\": \"LORA\", \"layers_to_transform\": 3, \"layers_pattern\": \"layers\","
                + " \"init_lora_weights\": \"gaussian\", \"modules_to_save\": [\"score\"]}");
        assertEquals(List.of(3), config.layersToTransform());
        assertEquals(List.of("layers"), config.layersPattern());
        assertEquals(new InitLoraWeights.Method("gaussian"), config.initLoraWeights());
        String json = config.toJson();
        assertTrue(json.contains("\"layers_pattern\": \"layers\","), json);
        assertTrue(json.contains("\"layers_to_transform\": [\n    3\n  ],"), json);
        assertTrue(json.contains("\"init_lora_weights\": \"gaussian\","), json);
        assertTrue(json.contains("\"modules_to_save\": [\n    \"score\"\n  ],"), json);
    }

    @Test
    void rankAndAlphaPatternsMatchModulePathSuffixesLikePeft() throws IOException {
        LoraAdapterConfig config = parse("""
                {"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                 "rank_pattern": {"q_proj": 16, "layers.0.self_attn.k_proj": 4},
                 "alpha_pattern": {"q_proj": 64}}""");
        assertEquals(16, config.rankFor("model.layers.0.self_attn.q_proj"));
        assertEquals(16, config.rankFor("q_proj"));
        assertEquals(8, config.rankFor("model.layers.0.self_attn.q_proj_x"), "the key must end the path");
        assertEquals(8, config.rankFor("model.layers.0.self_attn.xq_proj"), "the key must start after a dot");
        assertEquals(4, config.rankFor("model.layers.0.self_attn.k_proj"));
        assertEquals(8, config.rankFor("model.layers.10.self_attn.k_proj"));
        assertEquals(8, config.rankFor("model.layers.0.self_attn.v_proj"));
        assertEquals(64.0, config.alphaFor("model.layers.0.self_attn.q_proj"));
        assertEquals(16.0, config.alphaFor("model.layers.0.self_attn.k_proj"));
        assertEquals(4.0, config.scaling("model.layers.0.self_attn.q_proj"), "64 / 16");
        assertEquals(4.0, config.scaling("model.layers.0.self_attn.k_proj"), "16 / 4");
        assertEquals(2.0, config.scaling("model.layers.0.self_attn.v_proj"), "16 / 8");
    }

    @Test
    void firstMatchingPatternKeyWinsInFileOrder() throws IOException {
        LoraAdapterConfig config = parse("""
                {"peft_type": "LORA", "rank_pattern": {"layers\\\\.0\\\\..*": 2, ".*q_proj": 32}}""");
        assertEquals(2, config.rankFor("model.layers.0.self_attn.q_proj"));
        assertEquals(32, config.rankFor("model.layers.1.self_attn.q_proj"));
        var patterns = new LinkedHashMap<String, Integer>();
        patterns.put(".*q_proj", 32);
        patterns.put("layers\\.0\\..*", 2);
        assertEquals(32, LoraAdapterConfig.builder().rankPattern(patterns).build().rankFor("model.layers.0.self_attn.q_proj"));
    }

    @Test
    void rsloraScalesByTheSquareRootOfTheRank() throws IOException {
        LoraAdapterConfig config = parse("{\"peft_type\": \"LORA\", \"r\": 16, \"lora_alpha\": 32, \"use_rslora\": true,"
                + " \"rank_pattern\": {\"v_proj\": 64}}");
        assertEquals(8.0, config.scaling("model.layers.0.self_attn.q_proj"), "32 / sqrt(16)");
        assertEquals(4.0, config.scaling("model.layers.0.self_attn.v_proj"), "32 / sqrt(64)");
    }

    @Test
    void otherKeysAreKeptAndCannotBeChangedFromOutside() throws IOException {
        LoraAdapterConfig config = LoraAdapterConfig.builder().otherKeys(Map.of("exclude_modules", new TextNode("lm_head"))).build();
        assertTrue(config.toJson().contains("\"exclude_modules\": \"lm_head\","));
        assertThrows(UnsupportedOperationException.class, () -> config.otherKeys().put("x", TextNode.valueOf("y")));
        assertThrows(IllegalArgumentException.class,
                () -> LoraAdapterConfig.builder().otherKeys(Map.of("r", TextNode.valueOf("4"))).build());
    }

    @Test
    void rejectsWhatIsNotALoraConfigWeImplement() {
        assertTrue(rejection("{\"peft_type\": \"PREFIX_TUNING\"}").endsWith(
                "adapter_config.json: peft_type is \"PREFIX_TUNING\"; only \"LORA\" adapters are supported"));
        assertTrue(rejection("{\"r\": 8}").endsWith("peft_type is missing; only \"LORA\" adapters are supported"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"use_dora\": true}").endsWith(
                "adapter_config.json: use_dora is true; DoRA adapters are not supported"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"lora_bias\": true}").endsWith(
                "lora_bias = true asks for a trainable bias on lora_B, which is not supported"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"layer_replication\": [[0, 4], [2, 5]]}").contains(
                "layer_replication = [[0,4],[2,5]] asks for replicated base layers"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"target_parameters\": [\"experts.w1\"]}").contains(
                "LoRA on raw parameters"));
    }

    @Test
    void rejectsMalformedValues() {
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"r\": \"8\"}").endsWith("r must be an integer, found \"8\""));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"r\": 8.5}").endsWith("r must be an integer, found 8.5"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"r\": 0}").endsWith("r must be positive, got 0"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"bias\": \"some\"}").endsWith(
                "bias must be \"none\", \"all\" or \"lora_only\", found \"some\""));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"lora_dropout\": 1.5}").endsWith("lora_dropout must be in [0, 1], got 1.5"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"rank_pattern\": {\"q_proj\": 0}}").endsWith(
                "rank_pattern['q_proj'] must be a positive integer, got 0"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"rank_pattern\": {\"q_proj(\": 4}}").contains(
                "rank_pattern key 'q_proj(' is not a valid regex"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\", 3]}").endsWith(
                "target_modules must hold strings only, found 3"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"layers_pattern\": \"layers\"}").endsWith(
                "layers_pattern requires layers_to_transform"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"target_modules\": \".*q_proj\", \"layers_to_transform\": [0]}")
                .endsWith("layers_to_transform cannot be used when target_modules is a regex string"));
        assertTrue(rejection("{\"peft_type\": \"LORA\", \"peft_type\": \"LORA\"}").contains("Duplicate field 'peft_type'"));
        assertTrue(rejection("[\"LORA\"]").endsWith("adapter_config.json: must hold a JSON object"));
        assertTrue(rejection("{\"peft_type\": \"LORA\",").contains("adapter_config.json: not valid JSON"));
    }
}
