"""ember's model in PyTorch, as a throughput yardstick: the same architecture, trained the same
way (random tokens, AdamW, gradient clipping), timed the same way as `ember bench`, so that the
two compare in the same run (scripts/bench-vs-torch.sh alternates them).

The architecture: token embedding; pre-norm blocks of causal self-attention (one fused q/k/v
projection with bias, RoPE rotate-half on q and k, softmax attention, an output projection) and
an MLP d → 4d → d with exact GELU; a final LayerNorm; the LM head tied to the embedding;
GPT-2's initialisation.

    .venv/bin/python python/reference.py --preset cpu-baby --threads 2
    .venv/bin/python python/reference.py --peak --threads 2
    .venv/bin/python python/reference.py --preset shakespeare-char --device cuda --dtype bf16 --compile

Prints one JSON line: tokens_per_s, step_ms, the model's FLOPs per token (ember's formula,
6·N + 12·L·d·T), achieved GFLOP/s and MFU against --peak-gflops (default: measured).
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "nano": dict(n_layer=2, n_head=2, d_model=32, block=32, batch=8),
    "cpu-baby": dict(n_layer=4, n_head=4, d_model=128, block=64, batch=12),
    "shakespeare-char": dict(n_layer=6, n_head=6, d_model=384, block=256, batch=64),
}


class Rope(nn.Module):
    """cos/sin tables for rotate-half RoPE over whole heads."""

    def __init__(self, block, d_head, theta=10000.0):
        super().__init__()
        freq = theta ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)
        angle = torch.arange(block, dtype=torch.float64)[:, None] * freq[None, :]
        self.register_buffer("cos", torch.cos(angle).repeat(1, 2).float(), persistent=False)
        self.register_buffer("sin", torch.sin(angle).repeat(1, 2).float(), persistent=False)

    def forward(self, x):  # [batch, heads, seq, d_head]
        t, half = x.shape[2], x.shape[3] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.cos[:t] + rotated * self.sin[:t]


class Attention(nn.Module):
    def __init__(self, d, heads, block, manual):
        super().__init__()
        self.heads, self.manual = heads, manual
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.rope = Rope(block, d // heads)
        self.register_buffer("mask", torch.ones(block, block, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (p.view(b, t, self.heads, d // self.heads).transpose(1, 2) for p in self.qkv(x).split(d, dim=-1))
        q, k = self.rope(q), self.rope(k)
        if self.manual:
            w = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            y = torch.softmax(w.masked_fill(~self.mask[:t, :t], float("-inf")), dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads, block, manual):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, block, manual)
        self.fc, self.fc_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, n_layer, n_head, d_model, block, manual=False):
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head, block, manual) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("attn.proj.weight", "fc_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens):
        x = self.wte(tokens)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


def flops_per_token(vocab, n_layer, d_model, block):
    non_embedding = n_layer * (12 * d_model * d_model + 13 * d_model) + 2 * d_model
    return 6 * non_embedding + 12 * n_layer * d_model * block


def peak_gflops(device, n=2048, reps=5):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=PRESETS, default="cpu-baby")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32", help="autocast compute type (weights stay f32)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--attn", choices=["sdpa", "manual"], default="sdpa")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-steps", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--peak", action="store_true", help="only measure the fp32 matmul peak (GFLOP/s)")
    ap.add_argument("--peak-gflops", type=float)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.peak:
        print(json.dumps({"gflops": peak_gflops(device), "threads": args.threads, "device": args.device}))
        return
    p = dict(PRESETS[args.preset])
    if args.batch:
        p["batch"] = args.batch
    torch.manual_seed(args.seed)
    model = Gpt(args.vocab, p["n_layer"], p["n_head"], p["d_model"], p["block"], args.attn == "manual").to(device)
    decay = [q for q in model.parameters() if q.dim() == 2]
    rest = [q for q in model.parameters() if q.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    step_model = torch.compile(model) if args.compile else model
    autocast = {"bf16": torch.bfloat16, "f16": torch.float16}.get(args.dtype)
    scaler = torch.amp.GradScaler(device.type) if args.dtype == "f16" else None
    gen = torch.Generator().manual_seed(args.seed)

    def step():
        x = torch.randint(0, args.vocab, (p["batch"], p["block"] + 1), generator=gen).to(device)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = step_model(x[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        (scaler.step(opt), scaler.update()) if scaler else opt.step()
        return loss

    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    first = step().item()
    for _ in range(args.warmup - 1):
        step()
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        last = step()
        steps += 1
        sync()
        elapsed = time.perf_counter() - start
        if steps >= 2 and elapsed >= args.max_seconds:
            break
        if steps >= args.min_steps and elapsed >= args.min_seconds:
            break
    tokens = steps * p["batch"] * p["block"]
    fpt = flops_per_token(args.vocab, p["n_layer"], p["d_model"], p["block"])
    achieved = tokens * fpt / elapsed / 1e9
    peak = args.peak_gflops or peak_gflops(device)
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "device": args.device, "dtype": args.dtype,
        "compile": args.compile, "attn": args.attn, "preset": args.preset, **p, "vocab": args.vocab,
        "threads": args.threads, "timed_steps": steps, "timed_s": elapsed, "step_ms": 1e3 * elapsed / steps,
        "tokens_per_s": tokens / elapsed, "flops_per_token": fpt, "achieved_gflops": achieved,
        "peak_gflops": peak, "mfu": achieved / peak, "first_loss": first, "last_loss": last.item(),
    }))


if __name__ == "__main__":
    main()
