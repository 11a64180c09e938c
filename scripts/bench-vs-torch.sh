#!/usr/bin/env bash
# Training throughput of ember against the PyTorch reference implementation of the same
# architecture, on the same machine, alternating, several rounds each; prints both medians,
# the ratio, MFU and peak memory.
#
#   scripts/bench-vs-torch.sh [ROUNDS]          (default 3)
#
# Needs a Python with torch (python3 -m venv .venv && .venv/bin/pip install torch): PYTHON
# names the interpreter (default .venv/bin/python if present, else python3). The PyTorch side is
# python/reference.py, the same model written in PyTorch. Both run on 2 threads, f32, exact
# GELU, random tokens, vocab 65. EMBER=path/to/ember uses a binary already built.
#
# Presets (as python/reference.py's):
#   cpu-baby          4 layers, 4 heads, d_model 128, context 64, batch 12
#   shakespeare-char  6 layers, 6 heads, d_model 384, context 256, batch 8
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${1:-3}"
torch_gpt=python/reference.py
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
threads=2
"$python" -c "import torch" 2>/dev/null || { echo "error: $python cannot import torch; see the header of this script" >&2; exit 1; }

if [ -n "${EMBER:-}" ]; then
    ember="$EMBER"
else
    cargo build --release --locked -p ember-cli 2>&1 | tail -1
    ember="${CARGO_TARGET_DIR:-target}/release/ember"
fi
export RAYON_NUM_THREADS=$threads

# MFU's denominator, the same for both: the faster of two measured fp32 matrix-multiply rates,
# PyTorch's (one 2048³ product on $threads threads) and ember's (each of ember's shard threads
# multiplying its own 1024³ product at once, as ember trains).
torch_peak=$("$python" "$torch_gpt" --peak --threads $threads | "$python" -c 'import json,sys; print(json.load(sys.stdin)["gflops"])')
ember_peak=$("$ember" bench --config configs/shakespeare-char.toml --warmup 1 --steps 1 --min-seconds 0 --max-seconds 0 --json | "$python" -c 'import json,sys; print(round(json.load(sys.stdin)["peak_gflops"], 1))')
peak=$("$python" -c "print(max($torch_peak, $ember_peak))")
echo "fp32 matmul peak: $peak GFLOP/s (PyTorch, one 2048³ product on $threads threads: $torch_peak; ember, a 1024³ product per shard thread at once: $ember_peak)"
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT

# Runs the reference and reports its JSON line with the child's peak RSS added.
torch_run() {
    "$python" - "$torch_gpt" "$@" <<'PY'
import json, resource, subprocess, sys
line = subprocess.run([sys.executable] + sys.argv[1:], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
r = json.loads(line)
r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(r))
PY
}

bench_preset() { # name, ember config, ember --set args..., -- torch args...
    local name=$1 config=$2; shift 2
    local ember_args=() torch_args=()
    while [ "$1" != "--" ]; do ember_args+=("$1"); shift; done; shift
    torch_args=("$@")
    for r in $(seq "$rounds"); do
        "$ember" bench --config "$config" "${ember_args[@]}" --peak-gflops "$peak" --json >> "$out/$name.ember"
        torch_run "${torch_args[@]}" --threads $threads --peak-gflops "$peak" >> "$out/$name.torch"
        echo "  $name round $r: ember $(tail -1 "$out/$name.ember" | "$python" -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_s"]))') tok/s, pytorch $(tail -1 "$out/$name.torch" | "$python" -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_s"]))') tok/s"
    done
}

bench_preset cpu-baby configs/shakespeare-char.toml -- --preset cpu-baby
bench_preset shakespeare-char configs/shakespeare-char-gpu.toml --set train.batch_size=8 --set model.dropout=0 -- --preset shakespeare-char --batch 8

"$python" - "$out" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
print()
print("| preset | ember tok/s | PyTorch tok/s | ratio | ember MFU | PyTorch MFU | ember peak RSS | PyTorch peak RSS |")
print("|---|---|---|---|---|---|---|---|")
rounds = []
for name in ("cpu-baby", "shakespeare-char"):
    e = [json.loads(l) for l in open(os.path.join(out, name + ".ember"))]
    t = [json.loads(l) for l in open(os.path.join(out, name + ".torch"))]
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    et, tt = med(e, "tokens_per_s"), med(t, "tokens_per_s")
    print(f"| {name} | {et:,.0f} | {tt:,.0f} | {et/tt:.2f}× | {100*med(e,'mfu'):.0f}% | {100*med(t,'mfu'):.0f}% | {med(e,'peak_rss_mb'):.0f} MiB | {med(t,'peak_rss_mb'):.0f} MiB |")
    rounds.append((name, [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(e, t)]))
print()
# Each round runs the two programs back to back, so its ratio is little affected by the slow
# drifts of a shared machine's speed, which move both medians above.
for name, ratios in rounds:
    print(f"{name}: ratio round by round " + ", ".join(f"{r:.2f}" for r in ratios) + f" (median {statistics.median(ratios):.2f})")
PY
