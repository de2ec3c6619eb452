package dev.loraflow.core.model;

/** config.json texts shaped as the Hugging Face Hub serves them, extra keys included. */
final class HfConfigs {

    private HfConfigs() {}

    /** openai-community/gpt2. */
    static final String GPT2_SMALL = """
            {
              "activation_function": "gelu_new",
              "architectures": [
                "GPT2LMHeadModel"
              ],
              "attn_pdrop": 0.1,
              "bos_token_id": 50256,
              "embd_pdrop": 0.1,
              "eos_token_id": 50256,
              "initializer_range": 0.02,
              "layer_norm_epsilon": 1e-05,
              "model_type": "gpt2",
              "n_ctx": 1024,
              "n_embd": 768,
              "n_head": 12,
              "n_layer": 12,
              "n_positions": 1024,
              "resid_pdrop": 0.1,
              "summary_activation": null,
              "summary_first_dropout": 0.1,
              "summary_proj_to_labels": true,
              "summary_type": "cls_index",
              "summary_use_proj": true,
              "task_specific_params": {
                "text-generation": {
                  "do_sample": true,
                  "max_length": 50
                }
              },
              "vocab_size": 50257
            }
            """;

    /** Like HuggingFaceTB/SmolLM2-135M. */
    static final String SMOLLM2_135M = """
            {
              "architectures": [
                "LlamaForCausalLM"
              ],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "bos_token_id": 0,
              "eos_token_id": 0,
              "hidden_act": "silu",
              "hidden_size": 576,
              "initializer_range": 0.041666666666666664,
              "intermediate_size": 1536,
              "is_llama_config": true,
              "max_position_embeddings": 8192,
              "mlp_bias": false,
              "model_type": "llama",
              "num_attention_heads": 9,
              "num_hidden_layers": 30,
              "num_key_value_heads": 3,
              "pretraining_tp": 1,
              "rms_norm_eps": 1e-05,
              "rope_interleaved": false,
              "rope_scaling": null,
              "rope_theta": 100000,
              "tie_word_embeddings": true,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.42.3",
              "use_cache": true,
              "vocab_size": 49152
            }
            """;

    /** Like TinyLlama/TinyLlama-1.1B-Chat-v1.0. */
    static final String TINYLLAMA = """
            {
              "architectures": [
                "LlamaForCausalLM"
              ],
              "attention_bias": false,
              "bos_token_id": 1,
              "eos_token_id": 2,
              "hidden_act": "silu",
              "hidden_size": 2048,
              "initializer_range": 0.02,
              "intermediate_size": 5632,
              "max_position_embeddings": 2048,
              "model_type": "llama",
              "num_attention_heads": 32,
              "num_hidden_layers": 22,
              "num_key_value_heads": 4,
              "pretraining_tp": 1,
              "rms_norm_eps": 1e-05,
              "rope_scaling": null,
              "rope_theta": 10000.0,
              "tie_word_embeddings": false,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.35.0",
              "use_cache": true,
              "vocab_size": 32000
            }
            """;

    /** A two-layer GPT-2 small enough to list every tensor. */
    static Gpt2Config tinyGpt2() {
        return Gpt2Config.of(11, 7, 4, 2, 2);
    }

    /** A two-layer Llama with grouped-query attention: 4 heads of 2, 2 key/value heads. */
    static DecoderConfig tinyLlama(boolean tied) {
        return DecoderConfig.llama(13, 8, 6, 2, 4, 2, 2, 16, 1e-6, 10000, tied);
    }
}
