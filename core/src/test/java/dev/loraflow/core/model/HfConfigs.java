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

    /** Like meta-llama/Llama-3.2-1B. */
    static final String LLAMA_3_2_1B = """
            {
              "architectures": ["LlamaForCausalLM"],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "bos_token_id": 128000,
              "eos_token_id": 128001,
              "head_dim": 64,
              "hidden_act": "silu",
              "hidden_size": 2048,
              "initializer_range": 0.02,
              "intermediate_size": 8192,
              "max_position_embeddings": 131072,
              "mlp_bias": false,
              "model_type": "llama",
              "num_attention_heads": 32,
              "num_hidden_layers": 16,
              "num_key_value_heads": 8,
              "pretraining_tp": 1,
              "rms_norm_eps": 1e-05,
              "rope_scaling": {
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3"
              },
              "rope_theta": 500000.0,
              "tie_word_embeddings": true,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.45.0.dev0",
              "use_cache": true,
              "vocab_size": 128256
            }
            """;

    /** Like Qwen/Qwen2.5-0.5B. */
    static final String QWEN2_5_0_5B = """
            {
              "architectures": ["Qwen2ForCausalLM"],
              "attention_dropout": 0.0,
              "bos_token_id": 151643,
              "eos_token_id": 151643,
              "hidden_act": "silu",
              "hidden_size": 896,
              "initializer_range": 0.02,
              "intermediate_size": 4864,
              "max_position_embeddings": 32768,
              "max_window_layers": 24,
              "model_type": "qwen2",
              "num_attention_heads": 14,
              "num_hidden_layers": 24,
              "num_key_value_heads": 2,
              "rms_norm_eps": 1e-06,
              "rope_theta": 1000000.0,
              "sliding_window": 32768,
              "tie_word_embeddings": true,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.40.1",
              "use_cache": true,
              "use_mrope": false,
              "use_sliding_window": false,
              "vocab_size": 151936
            }
            """;

    /** Like mistralai/Mistral-7B-v0.3. */
    static final String MISTRAL_7B_V0_3 = """
            {
              "architectures": ["MistralForCausalLM"],
              "attention_dropout": 0.0,
              "bos_token_id": 1,
              "eos_token_id": 2,
              "hidden_act": "silu",
              "hidden_size": 4096,
              "initializer_range": 0.02,
              "intermediate_size": 14336,
              "max_position_embeddings": 32768,
              "model_type": "mistral",
              "num_attention_heads": 32,
              "num_hidden_layers": 32,
              "num_key_value_heads": 8,
              "rms_norm_eps": 1e-05,
              "rope_theta": 1000000.0,
              "sliding_window": null,
              "tie_word_embeddings": false,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.42.0.dev0",
              "use_cache": true,
              "vocab_size": 32768
            }
            """;

    /** Like google/gemma-2b (Gemma 1, whose hidden_act "gelu" Transformers overrides with gelu_pytorch_tanh). */
    static final String GEMMA_2B = """
            {
              "architectures": ["GemmaForCausalLM"],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "bos_token_id": 2,
              "eos_token_id": 1,
              "head_dim": 256,
              "hidden_act": "gelu",
              "hidden_size": 2048,
              "initializer_range": 0.02,
              "intermediate_size": 16384,
              "max_position_embeddings": 8192,
              "model_type": "gemma",
              "num_attention_heads": 8,
              "num_hidden_layers": 18,
              "num_key_value_heads": 1,
              "pad_token_id": 0,
              "rms_norm_eps": 1e-06,
              "rope_scaling": null,
              "rope_theta": 10000.0,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.38.0.dev0",
              "use_cache": true,
              "vocab_size": 256000
            }
            """;

    /** Like google/gemma-2-2b. */
    static final String GEMMA_2_2B = """
            {
              "architectures": ["Gemma2ForCausalLM"],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "attn_logit_softcapping": 50.0,
              "bos_token_id": 2,
              "cache_implementation": "hybrid",
              "eos_token_id": 1,
              "final_logit_softcapping": 30.0,
              "head_dim": 256,
              "hidden_act": "gelu_pytorch_tanh",
              "hidden_activation": "gelu_pytorch_tanh",
              "hidden_size": 2304,
              "initializer_range": 0.02,
              "intermediate_size": 9216,
              "max_position_embeddings": 8192,
              "model_type": "gemma2",
              "num_attention_heads": 8,
              "num_hidden_layers": 26,
              "num_key_value_heads": 4,
              "pad_token_id": 0,
              "query_pre_attn_scalar": 256,
              "rms_norm_eps": 1e-06,
              "rope_theta": 10000.0,
              "sliding_window": 4096,
              "torch_dtype": "float32",
              "transformers_version": "4.42.4",
              "use_cache": true,
              "vocab_size": 256000
            }
            """;

    /** Like microsoft/Phi-3-mini-4k-instruct. */
    static final String PHI_3_MINI_4K = """
            {
              "architectures": ["Phi3ForCausalLM"],
              "attention_bias": false,
              "attention_dropout": 0.0,
              "bos_token_id": 1,
              "embd_pdrop": 0.0,
              "eos_token_id": 32000,
              "hidden_act": "silu",
              "hidden_size": 3072,
              "initializer_range": 0.02,
              "intermediate_size": 8192,
              "max_position_embeddings": 4096,
              "model_type": "phi3",
              "num_attention_heads": 32,
              "num_hidden_layers": 32,
              "num_key_value_heads": 32,
              "original_max_position_embeddings": 4096,
              "pad_token_id": 32000,
              "resid_pdrop": 0.0,
              "rms_norm_eps": 1e-05,
              "rope_scaling": null,
              "rope_theta": 10000.0,
              "sliding_window": 2047,
              "tie_word_embeddings": false,
              "torch_dtype": "bfloat16",
              "transformers_version": "4.40.2",
              "use_cache": true,
              "vocab_size": 32064
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
