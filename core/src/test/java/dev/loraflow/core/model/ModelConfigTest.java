package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelConfigTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SOURCE = "models/x/config.json";

    @TempDir
    Path dir;

    @Test
    void readsGpt2SmallAsTheHubShipsIt() throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, HfConfigs.GPT2_SMALL);

        var config = assertInstanceOf(Gpt2Config.class, ModelConfig.read(file));

        assertEquals(new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5), config);
        assertEquals("gpt2", config.modelType());
        assertEquals(64, config.headDim());
        assertTrue(config.tieWordEmbeddings());
    }

    @Test
    void readsSmolLm2LikeLlamaWithGroupedQueryAttentionAndTiedHead() {
        var config = assertInstanceOf(DecoderConfig.class, ModelConfig.parse(HfConfigs.SMOLLM2_135M, SOURCE));

        assertEquals(DecoderConfig.llama(49152, 576, 1536, 30, 9, 3, 64, 8192, 1e-5, 100000, true), config);
        assertEquals("llama", config.modelType());
    }

    @Test
    void readsTinyLlamaLikeLlamaWithUntiedHead() {
        var config = assertInstanceOf(DecoderConfig.class, ModelConfig.parse(HfConfigs.TINYLLAMA, SOURCE));

        assertEquals(DecoderConfig.llama(32000, 2048, 5632, 22, 32, 4, 64, 2048, 1e-5, 10000, false), config);
    }

    @Test
    void appliesHfDefaultsForOptionalKeys() {
        var gpt2 = (Gpt2Config) ModelConfig.parse("""
                {"model_type": "gpt2", "vocab_size": 10, "n_positions": 8, "n_embd": 6, "n_layer": 1, "n_head": 2,
                 "n_inner": null}""", SOURCE);
        assertEquals(new Gpt2Config(10, 8, 6, 1, 2, 24, 1e-5), gpt2);

        var llama = (DecoderConfig) ModelConfig.parse("""
                {"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 12,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32}""", SOURCE);
        assertEquals(DecoderConfig.llama(10, 8, 12, 1, 2, 2, 4, 32, 1e-6, 10000, false), llama);
    }

    @Test
    void explicitHeadDimNeedNotDivideHiddenSize() {
        var llama = (DecoderConfig) ModelConfig.parse(llamaWith(root -> root.put("hidden_size", 10).put("head_dim", 4)), SOURCE);
        assertEquals(4, llama.headDim());
        assertEquals(10, llama.hiddenSize());
    }

    @Test
    void toJsonRoundTripsAndNamesTheArchitecture() throws IOException {
        for (String hub : new String[] {HfConfigs.GPT2_SMALL, HfConfigs.SMOLLM2_135M, HfConfigs.TINYLLAMA}) {
            ModelConfig config = ModelConfig.parse(hub, SOURCE);
            String written = config.toJson();

            assertEquals(config, ModelConfig.parse(written, "written"));
            JsonNode root = JSON.readTree(written);
            JsonNode original = JSON.readTree(hub);
            assertEquals(original.get("architectures"), root.get("architectures"));
            assertEquals(original.get("model_type"), root.get("model_type"));
            assertEquals(original.get("vocab_size"), root.get("vocab_size"));
            assertTrue(written.endsWith("}\n"));
        }
    }

    @Test
    void toJsonUsesHfKeyNamesSortedAsTransformersWritesThem() {
        String written = HfConfigs.tinyLlama(true).toJson();
        assertEquals("""
                {
                  "architectures": [
                    "LlamaForCausalLM"
                  ],
                  "attention_bias": false,
                  "head_dim": 2,
                  "hidden_act": "silu",
                  "hidden_size": 8,
                  "intermediate_size": 6,
                  "max_position_embeddings": 16,
                  "mlp_bias": false,
                  "model_type": "llama",
                  "num_attention_heads": 4,
                  "num_hidden_layers": 2,
                  "num_key_value_heads": 2,
                  "rms_norm_eps": 1e-06,
                  "rope_scaling": null,
                  "rope_theta": 10000.0,
                  "tie_word_embeddings": true,
                  "vocab_size": 13
                }
                """, written);
        assertEquals("""
                {
                  "activation_function": "gelu_new",
                  "architectures": [
                    "GPT2LMHeadModel"
                  ],
                  "layer_norm_epsilon": 1e-05,
                  "model_type": "gpt2",
                  "n_ctx": 7,
                  "n_embd": 4,
                  "n_head": 2,
                  "n_inner": 16,
                  "n_layer": 2,
                  "n_positions": 7,
                  "tie_word_embeddings": true,
                  "vocab_size": 11
                }
                """, HfConfigs.tinyGpt2().toJson());
    }

    @Test
    void rejectsUnknownModelTypeNamingTheSupportedOnes() {
        assertRejected(gpt2With(root -> root.put("model_type", "falcon")), SOURCE + ": model_type \"falcon\" is not"
                + " supported; supported: \"gpt2\", \"llama\", \"qwen2\", \"mistral\", \"gemma\", \"gemma2\", \"phi3\"");
        assertRejected("{\"vocab_size\": 3}", SOURCE + ": missing required key 'model_type'");
    }

    @Test
    void rejectsMalformedJson() {
        var e = assertThrows(ModelConfigException.class, () -> ModelConfig.parse("{\"model_type\": ", SOURCE));
        assertTrue(e.getMessage().startsWith(SOURCE + ": not valid JSON"), e.getMessage());
        assertRejected("[1, 2]", SOURCE + ": must hold a JSON object");
    }

    @Test
    void rejectsMissingRequiredKeys() {
        assertRejected(gpt2With(root -> root.remove("n_embd")), SOURCE + ": missing required key 'n_embd'");
        assertRejected(gpt2With(root -> root.putNull("vocab_size")), SOURCE + ": missing required key 'vocab_size'");
        assertRejected(llamaWith(root -> root.remove("num_hidden_layers")),
                SOURCE + ": missing required key 'num_hidden_layers'");
        assertRejected(llamaWith(root -> root.remove("max_position_embeddings")),
                SOURCE + ": missing required key 'max_position_embeddings'");
    }

    @Test
    void rejectsNonPositiveAndNonIntegerSizes() {
        assertRejected(gpt2With(root -> root.put("n_layer", 0)), SOURCE + ": 'n_layer' must be positive, found 0");
        assertRejected(gpt2With(root -> root.put("n_inner", -4)), SOURCE + ": 'n_inner' must be positive, found -4");
        assertRejected(llamaWith(root -> root.put("intermediate_size", -1)),
                SOURCE + ": 'intermediate_size' must be positive, found -1");
        assertRejected(llamaWith(root -> root.put("hidden_size", 8.5)),
                SOURCE + ": 'hidden_size' must be an integer, found 8.5");
        assertRejected(llamaWith(root -> root.put("vocab_size", "32000")),
                SOURCE + ": 'vocab_size' must be an integer, found \"32000\"");
        assertRejected(llamaWith(root -> root.put("rms_norm_eps", 0)),
                SOURCE + ": 'rms_norm_eps' must be a positive number, found 0");
    }

    @Test
    void rejectsHeadsThatDoNotDivide() {
        assertRejected(gpt2With(root -> root.put("n_head", 5)), SOURCE + ": 'n_head' (5) must divide 'n_embd' (768)");
        assertRejected(llamaWith(root -> root.put("num_attention_heads", 7)),
                SOURCE + ": 'num_attention_heads' (7) must divide 'hidden_size' (576) when 'head_dim' is not given");
        assertRejected(llamaWith(root -> root.put("num_key_value_heads", 2)),
                SOURCE + ": 'num_key_value_heads' (2) must divide 'num_attention_heads' (9)");
    }

    @Test
    void rejectsUnsupportedFeatures() {
        assertRejected(gpt2With(root -> root.put("activation_function", "relu")),
                SOURCE + ": activation_function \"relu\" is not supported; GPT-2 models must use \"gelu_new\"");
        assertRejected(gpt2With(root -> root.put("tie_word_embeddings", false)),
                SOURCE + ": tie_word_embeddings is false; GPT-2 models with an untied output head are not supported");
        assertRejected(llamaWith(root -> root.put("hidden_act", "gelu")),
                SOURCE + ": hidden_act \"gelu\" is not supported; supported: \"silu\", \"gelu_pytorch_tanh\"");
        assertRejected(llamaWith(root -> root.put("mlp_bias", true)),
                SOURCE + ": mlp_bias is true; MLP projections with a bias are not supported");
        assertRejected(llamaWith(root -> root.putObject("rope_scaling").put("rope_type", "yarn").put("factor", 4.0)),
                SOURCE + ": rope_scaling rope_type \"yarn\" is not supported; supported: \"linear\", \"dynamic\","
                        + " \"llama3\" (or null for plain RoPE)");
        assertRejected(llamaWith(root -> root.putObject("rope_scaling").put("rope_type", "llama3").put("factor", 8.0)),
                SOURCE + ": rope_scaling needs a number 'low_freq_factor', found null");
        assertRejected(llamaWith(root -> root.putObject("rope_scaling").put("type", "linear").put("factor", 0.5)),
                SOURCE + ": rope_scaling factor must be a number ≥ 1, found 0.5");
    }

    @Test
    void rejectsWrongTypesOddHeadDimAndDuplicateKeys() {
        assertRejected(llamaWith(root -> root.put("tie_word_embeddings", "yes")),
                SOURCE + ": 'tie_word_embeddings' must be true or false, found \"yes\"");
        assertRejected(llamaWith(root -> root.put("head_dim", 63)),
                SOURCE + ": 'head_dim' must be even for rotary embeddings, found 63");
        assertRejected(gpt2With(root -> root.put("model_type", 2)), SOURCE + ": 'model_type' must be a string, found 2");
        var e = assertThrows(ModelConfigException.class,
                () -> ModelConfig.parse("{\"model_type\": \"gpt2\", \"model_type\": \"llama\"}", SOURCE));
        assertTrue(e.getMessage().startsWith(SOURCE + ": not valid JSON: Duplicate field 'model_type'"), e.getMessage());
    }

    @Test
    void recordsCheckWhatTheyAreBuiltWith() {
        var e = assertThrows(ModelConfigException.class, () -> DecoderConfig.llama(10, 8, 12, 1, 4, 3, 2, 32, 1e-6, 1e4, false));
        assertEquals("'num_key_value_heads' (3) must divide 'num_attention_heads' (4)", e.getMessage());
        assertThrows(ModelConfigException.class, () -> Gpt2Config.of(10, 0, 8, 1, 2));
        assertFalse(HfConfigs.tinyLlama(false).tieWordEmbeddings());
    }

    private static void assertRejected(String json, String message) {
        var e = assertThrows(ModelConfigException.class, () -> ModelConfig.parse(json, SOURCE));
        assertInstanceOf(IllegalArgumentException.class, e);
        assertEquals(message, e.getMessage());
    }

    private static String gpt2With(Consumer<ObjectNode> edit) {
        return edited(HfConfigs.GPT2_SMALL, edit);
    }

    private static String llamaWith(Consumer<ObjectNode> edit) {
        return edited(HfConfigs.SMOLLM2_135M, edit);
    }

    private static String edited(String json, Consumer<ObjectNode> edit) {
        try {
            ObjectNode root = (ObjectNode) JSON.readTree(json);
            edit.accept(root);
            return JSON.writeValueAsString(root);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
