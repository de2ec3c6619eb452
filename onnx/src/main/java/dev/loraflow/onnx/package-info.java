/**
 * ONNX export of loraflow's causal LMs and its verification under ONNX Runtime.
 *
 * <p>{@link dev.loraflow.onnx.OnnxExporter} writes one graph per model (opset 17, IR 8 by
 * default) with the names Hugging Face Optimum gives decoder models, so that one session serves prefill and
 * KV-cached decoding of batched requests; each layer's attention is one {@code com.microsoft.GroupQueryAttention}
 * (as onnxruntime-genai's models), whose cache rows are right-padded:
 * <ul>
 *   <li>inputs {@code input_ids} int64 [batch_size, sequence_length], {@code attention_mask} int64
 *       [batch_size, total_sequence_length], each row's 1s first (its cached and new tokens), then 0s (right
 *       padding), {@code position_ids} int64 [batch_size, sequence_length] (padding positions any value in
 *       range), {@code past_key_values.{i}.key/value} float [batch_size, kv_heads, past_sequence_length,
 *       head_dim], each row's cached tokens in its first slots (sum(mask) − sequence_length of them; the rest
 *       never read), past_sequence_length 0 for a prefill; head_dim a multiple of 8;
 *   <li>outputs {@code logits} [batch_size, sequence_length, vocab] and {@code present.{i}.key/value}
 *       [batch_size, kv_heads, max(past_sequence_length, total_sequence_length), head_dim]: the past with each
 *       row's new tokens after its cached ones. Bound to the past's own buffer (a preallocated
 *       [batch_size, kv_heads, capacity, head_dim] given as both), ONNX Runtime writes only the new tokens, in place;
 *   <li>a run of several tokens per row after cached ones (a continued prompt) takes one row (ONNX Runtime's limit);
 *       a prefill (no cached tokens) and a decode step (one token per row) take any number;
 *   <li>un-merged graphs only: {@code lora.<PEFT module path>.A} [lora_slots, r, in], {@code .B}
 *       [lora_slots, out, r] and {@code .scaling} [lora_slots, 1, 1] for each adapted module, e.g.
 *       {@code lora.transformer.h.0.attn.c_attn.A} or {@code lora.model.layers.0.self_attn.q_proj.B}, and
 *       {@code lora.slot} float [lora_rows] (whole numbers; 1 row for all or one per batch row): adapters
 *       stacked over slots, ranks zero-padded to the largest (exact), each row gathering its own slot's A, B
 *       and scaling; the update is (x·A[slot]ᵀ · scaling[slot])·B[slot]ᵀ, so a run's cost grows with its rows,
 *       not with how many adapters they use (Punica's BGMV). {@link dev.loraflow.onnx.LoraInputs} builds one
 *       slot from a PEFT adapter, rank 0 (no update) for modules it leaves out.
 * </ul>
 * {@link dev.loraflow.onnx.OnnxVerifier} runs a fixed probe through the graph and through core's
 * Java forward and reports max |Δlogit| and whether the greedy continuations agree.
 */
package dev.loraflow.onnx;
