"""LoRA training throughput of plain PyTorch on CPU: the reference run-training.sh sets loraflow against.

GPT-2 small (Hugging Face GPT2LMHeadModel semantics), a Llama of similar size, or the Llama 3.2 1B and
Qwen2.5 0.5B shapes (Llama's block; Qwen2's q/k/v biases; tied heads; Llama 3's RoPE scaling), random frozen float32
base weights, LoRA r=8 alpha=16 dropout 0.05 on GPT-2's c_attn or Llama's q_proj and v_proj (PEFT
semantics). One step = forward, mean causal-LM cross-entropy on shifted labels, backward, AdamW step,
zero_grad. Prints one JSON line; tokens_per_s is batch * seq * steps over the measured steps' total time,
tokens_per_cpu_s the same tokens over the process's CPU time in those steps (all its threads), which a
shared machine's load does not change.

Written in plain torch because transformers is not installed; Debian's python3-torch (1.13) has no
scaled_dot_product_attention, so attention is the explicit softmax(QK^T/sqrt(d) + mask)V that
transformers 4.x itself runs on this torch.
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100
INIT_STD = 0.02

GPT2_SMALL = dict(vocab=50257, positions=1024, hidden=768, layers=12, heads=12, inner=3072, eps=1e-5)
# Llama-block shapes: a Llama of GPT-2 small's size, and the released Llama 3.2 1B and Qwen2.5 0.5B
# (config.json values; Qwen2 adds biases to q/k/v_proj, both tie the head to the embedding, Llama 3 scales RoPE).
DECODERS = {
    "llama": dict(vocab=32000, hidden=768, layers=12, heads=12, kv_heads=4, head_dim=64, intermediate=2048,
                  rope_theta=10000.0, eps=1e-5, tied=False, qkv_bias=False, llama3=None),
    "llama-3.2-1b": dict(vocab=128256, hidden=2048, layers=16, heads=32, kv_heads=8, head_dim=64, intermediate=8192,
                         rope_theta=500000.0, eps=1e-5, tied=True, qkv_bias=False, llama3=(32.0, 1.0, 4.0, 8192)),
    "qwen2.5-0.5b": dict(vocab=151936, hidden=896, layers=24, heads=14, kv_heads=2, head_dim=64, intermediate=4864,
                         rope_theta=1000000.0, eps=1e-6, tied=True, qkv_bias=True, llama3=None),
}


def frozen(*shape, std=INIT_STD):
    return nn.Parameter(torch.randn(*shape) * std, requires_grad=False)


def frozen_constant(value, *shape):
    return nn.Parameter(torch.full(shape, value), requires_grad=False)


class LoraBranch(nn.Module):
    """PEFT's LoRA update of a linear map in -> out: dropout(x) A^T B^T * alpha / r; A [r, in], B [out, r]."""

    def __init__(self, in_features, out_features, rank, alpha, dropout):
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)
        self.scaling = alpha / rank

    def forward(self, x):
        return F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling


class Conv1D(nn.Module):
    """GPT-2's linear layer: weight stored [in, out], y = x W + b; optionally with a LoRA branch."""

    def __init__(self, in_features, out_features, lora=None):
        super().__init__()
        self.weight = frozen(in_features, out_features)
        self.bias = frozen_constant(0.0, out_features)
        self.lora = LoraBranch(in_features, out_features, **lora) if lora else None

    def forward(self, x):
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)
        return y if self.lora is None else y + self.lora(x)


class Linear(nn.Module):
    """nn.Linear layout (weight [out, in]), as Llama's projections, a bias where Qwen2 has one; optionally LoRA."""

    def __init__(self, in_features, out_features, lora=None, bias=False):
        super().__init__()
        self.weight = frozen(out_features, in_features)
        self.bias = frozen_constant(0.0, out_features) if bias else None
        self.lora = LoraBranch(in_features, out_features, **lora) if lora else None

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        return y if self.lora is None else y + self.lora(x)


def causal_attention(q, k, v, mask):
    # q, k, v [B, heads, T, d]; mask [T, T] true above the diagonal
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    return torch.matmul(F.softmax(scores, dim=-1), v)


class Gpt2Block(nn.Module):
    def __init__(self, c, lora):
        super().__init__()
        e = c["hidden"]
        self.heads = c["heads"]
        self.ln_1 = nn.LayerNorm(e, eps=c["eps"])
        self.c_attn = Conv1D(e, 3 * e, lora)
        self.attn_c_proj = Conv1D(e, e)
        self.ln_2 = nn.LayerNorm(e, eps=c["eps"])
        self.c_fc = Conv1D(e, c["inner"])
        self.mlp_c_proj = Conv1D(c["inner"], e)

    def forward(self, x, mask):
        b, t, e = x.shape
        # qkv [B, T, 3E] -> q, k, v [B, heads, T, d]
        q, k, v = (part.view(b, t, self.heads, -1).transpose(1, 2) for part in self.c_attn(self.ln_1(x)).split(e, dim=2))
        attended = causal_attention(q, k, v, mask).transpose(1, 2).reshape(b, t, e)
        x = x + self.attn_c_proj(attended)
        return x + self.mlp_c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, c, lora):
        super().__init__()
        self.wte = frozen(c["vocab"], c["hidden"])
        self.wpe = frozen(c["positions"], c["hidden"])
        self.h = nn.ModuleList(Gpt2Block(c, lora) for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(c["hidden"], eps=c["eps"])
        for norm in [self.ln_f] + [n for block in self.h for n in (block.ln_1, block.ln_2)]:
            norm.requires_grad_(False)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        x = self.wte[ids] + self.wpe[:t]
        for block in self.h:
            x = block(x, mask)
        return F.linear(self.ln_f(x), self.wte)  # tied head: logits [B, T, vocab]


class RmsNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = frozen_constant(1.0, size)
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, c, lora):
        super().__init__()
        e = c["hidden"]
        self.heads = c["heads"]
        self.kv_heads = c["kv_heads"]
        self.head_dim = c["head_dim"]
        kv = self.kv_heads * self.head_dim
        q = self.heads * self.head_dim
        self.input_layernorm = RmsNorm(e, c["eps"])
        self.q_proj = Linear(e, q, lora, c["qkv_bias"])
        self.k_proj = Linear(e, kv, None, c["qkv_bias"])
        self.v_proj = Linear(e, kv, lora, c["qkv_bias"])
        self.o_proj = Linear(q, e)
        self.post_attention_layernorm = RmsNorm(e, c["eps"])
        self.gate_proj = Linear(e, c["intermediate"])
        self.up_proj = Linear(e, c["intermediate"])
        self.down_proj = Linear(c["intermediate"], e)

    def forward(self, x, mask, cos, sin):
        b, t, e = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # GQA: each kv head serves heads / kv_heads query heads (transformers' repeat_kv)
        group = self.heads // self.kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        x = x + self.o_proj(causal_attention(q, k, v, mask).transpose(1, 2).reshape(b, t, -1))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c, lora):
        super().__init__()
        self.embed_tokens = frozen(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList(LlamaBlock(c, lora) for _ in range(c["layers"]))
        self.norm = RmsNorm(c["hidden"], c["eps"])
        self.lm_head = self.embed_tokens if c["tied"] else frozen(c["vocab"], c["hidden"])
        self.head_dim = c["head_dim"]
        self.rope_theta = c["rope_theta"]
        self.llama3 = c["llama3"]

    def inverse_frequencies(self):
        inv_freq = 1.0 / self.rope_theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        if self.llama3 is None:
            return inv_freq
        # transformers' _compute_llama3_parameters
        factor, low, high, old = self.llama3
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        return torch.where(medium, smoothed, scaled)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        inv_freq = self.inverse_frequencies()
        angles = torch.outer(torch.arange(t, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # [T, d]
        cos, sin = angles.cos(), angles.sin()
        x = self.embed_tokens[ids]
        for layer in self.layers:
            x = layer(x, mask, cos, sin)
        return F.linear(self.norm(x), self.lm_head)  # logits [B, T, vocab]


def shifted_targets(ids):
    # Position t predicts token t + 1; the last position of each sequence predicts nothing.
    targets = torch.full_like(ids, IGNORE_INDEX)
    targets[:, :-1] = ids[:, 1:]
    return targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=("gpt2",) + tuple(DECODERS), required=True)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="measured steps")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps before them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    if args.batch_size < 1 or args.seq_len < 2 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("need --batch-size >= 1, --seq-len >= 2, --steps >= 1, --warmup >= 0, --threads >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    lora = dict(rank=8, alpha=16, dropout=0.05)
    if args.arch == "gpt2":
        config = GPT2_SMALL
        if args.seq_len > config["positions"]:
            parser.error("--seq-len %d exceeds GPT-2's %d positions" % (args.seq_len, config["positions"]))
        model = Gpt2(config, lora)
    else:
        config = DECODERS[args.arch]
        model = Llama(config, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4)
    print("%s: %d frozen, %d trainable parameters" % (
        args.arch, sum(p.numel() for p in model.parameters() if not p.requires_grad),
        sum(p.numel() for p in trainable)), file=sys.stderr)

    # Normalised hidden states against a head of std INIT_STD give logits ~ N(0, s^2), s^2 = hidden * INIT_STD^2,
    # whose mean log-sum-exp over the vocabulary is about ln(vocab) + s^2 / 2.
    expected_loss = math.log(config["vocab"]) + config["hidden"] * INIT_STD ** 2 / 2
    seconds = []
    cpu_seconds = []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(config["vocab"], (args.batch_size, args.seq_len))
        targets = shifted_targets(ids)
        start = time.perf_counter()
        cpu_start = time.process_time()
        logits = model(ids)
        loss = F.cross_entropy(logits.view(-1, config["vocab"]), targets.view(-1), ignore_index=IGNORE_INDEX)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        del logits
        if step >= args.warmup:
            seconds.append(elapsed)
            cpu_seconds.append(cpu)
        print("step %d: loss %.4f (expected about %.4f), %.0f ms, %.0f ms of CPU" % (
            step, loss.item(), expected_loss, 1e3 * elapsed, 1e3 * cpu), file=sys.stderr)

    tokens = args.batch_size * args.seq_len
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "arch": args.arch,
        "batch": args.batch_size,
        "seq": args.seq_len,
        "tokens_per_s": round(tokens * len(seconds) / sum(seconds), 1),
        "step_ms_median": round(1e3 * statistics.median(seconds), 1),
        "tokens_per_cpu_s": round(tokens * len(cpu_seconds) / sum(cpu_seconds), 1),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
