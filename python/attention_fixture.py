"""Attention weights of ember's architecture, computed in PyTorch, as a test fixture.

ember's model written out in plain PyTorch (float64), independently of the Rust code: token
embedding; pre-norm blocks with causal self-attention (one fused q/k/v projection, RoPE
rotate-half, softmax), a GELU MLP; final LayerNorm; tied head. The attention variants the test
covers are switches of the same function: a sliding window, ALiBi instead of RoPE, linear
attention (elu + 1 features).

It loads the golden model (crates/ember-train/tests/data/golden.json: 2 layers, 2 heads,
d_model 8, context 6) and writes, for each variant and each of the golden batch's two
sequences, every layer's and head's attention weights and the logits:

    .venv/bin/python python/attention_fixture.py > crates/ember-train/tests/data/attention.json

`crates/ember-train/tests/attention.rs` compares `ember attention`'s weights with these.
"""

import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "crates/ember-train/tests/data/golden.json"

VARIANTS = {
    "causal": {"window": None, "position": "rope", "linear": False},
    "sliding_window_3": {"window": 3, "position": "rope", "linear": False},
    "alibi": {"window": None, "position": "alibi", "linear": False},
    "linear": {"window": None, "position": "rope", "linear": True},
}


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def rope(x, theta):
    """Rotate-half RoPE over the whole head: pair (x[i], x[i + d/2]) turns by pos·θ^(-2i/d)."""
    _, _, t, d = x.shape
    half = d // 2
    freq = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / d)
    angle = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cos(angle).repeat(1, 2), torch.sin(angle).repeat(1, 2)
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def alibi_slopes(n):
    """Press et al.'s slopes: 2^(-8h/n) for a power of two n."""
    assert n & (n - 1) == 0, "the fixture uses a power-of-two head count"
    start = 2.0 ** (-8.0 / n)
    return torch.tensor([start ** (h + 1) for h in range(n)], dtype=torch.float64)


def attention_weights(q, k, variant):
    """[batch, heads, t, t] weights of each query over the keys."""
    _, h, t, d = q.shape
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    allowed = j <= i
    if variant["window"] is not None:
        allowed = allowed & (i - j < variant["window"])
    if variant["linear"]:
        phi = lambda x: torch.nn.functional.elu(x) + 1.0
        pair = (phi(q) @ phi(k).transpose(-1, -2)) * allowed
        return pair / (pair.sum(-1, keepdim=True) + 1e-6)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if variant["position"] == "alibi":
        scores = scores - alibi_slopes(h)[:, None, None] * (i - j).to(torch.float64)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1)


def forward(w, cfg, tokens, variant):
    heads, eps, theta = cfg["n_head"], cfg["ln_eps"], cfg["rope_theta"]
    x = w["wte.weight"][tokens]  # [batch, t, d]
    b, t, d = x.shape
    dh = d // heads
    all_weights = []
    for l in range(cfg["n_layer"]):
        p = lambda name: w[f"blocks.{l}.{name}"]
        hidden = layer_norm(x, p("ln1.weight"), p("ln1.bias"), eps)
        qkv = hidden @ p("attn.qkv.weight").T + p("attn.qkv.bias")
        q, k, v = (part.reshape(b, t, heads, dh).transpose(1, 2) for part in qkv.split(d, dim=-1))
        if variant["position"] == "rope":
            q, k = rope(q, theta), rope(k, theta)
        weights = attention_weights(q, k, variant)
        all_weights.append(weights)
        y = (weights @ v).transpose(1, 2).reshape(b, t, d)
        x = x + y @ p("attn.proj.weight").T + p("attn.proj.bias")
        hidden = layer_norm(x, p("ln2.weight"), p("ln2.bias"), eps)
        hidden = hidden @ p("mlp.fc.weight").T + p("mlp.fc.bias")
        hidden = 0.5 * hidden * (1.0 + torch.erf(hidden / math.sqrt(2.0)))
        x = x + hidden @ p("mlp.proj.weight").T + p("mlp.proj.bias")
    logits = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps) @ w["wte.weight"].T
    return all_weights, logits


def main():
    golden = json.loads(GOLDEN.read_text())
    cfg = golden["config"]
    weights = {k: torch.tensor(v, dtype=torch.float64) for k, v in golden["weights"].items()}
    tokens = torch.tensor(golden["inputs"])
    out = {"source": "python/attention_fixture.py", "inputs": golden["inputs"], "variants": {}}
    for name, variant in VARIANTS.items():
        layers, logits = forward(weights, cfg, tokens, variant)
        out["variants"][name] = {
            "config": variant,
            # [sequence][layer][head][query][key]
            "attention": [[layer[s].tolist() for layer in layers] for s in range(tokens.shape[0])],
            "logits": logits.tolist(),
        }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
