#!/usr/bin/env bash
# Training throughput of ember on one NVIDIA GPU against the PyTorch reference of the same model
# on the same GPU, in the same run: rounds that alternate every variant, medians reported, and
# the ratio of each ember variant to the fastest PyTorch one. Then (with --train) the
# 5000-step run of configs/shakespeare-char-gpu.toml, whose validation loss at 90 s of training
# the goal names.
#
#   scripts/bench-gpu.sh [--rounds N] [--train] [--out DIR]
#
# The variants, all on configs/shakespeare-char-gpu.toml's model and batch (6 layers, 6 heads,
# d_model 384, context 256, batch 64; dropout 0 so that both sides run the same kernels):
#   ember       f32 and bf16 compute (f32 master weights), built with --features cuda
#   ember+fuse  the same, built with --features cuda,fusion,autotune (Burn's operation fusion
#               and kernel autotuning)
#   pytorch     f32 eager, and bf16 autocast with torch.compile; both use
#               scaled_dot_product_attention (flash attention on the GPU)
#
# EMBER=path and EMBER_FUSED=path use binaries built beforehand (build them on a machine with
# cores to spare: `cargo build --release -p ember-cli --features cuda`, and with
# `--features cuda,fusion,autotune` into another CARGO_TARGET_DIR); otherwise the script builds
# both. PYTHON names an interpreter with torch (default .venv/bin/python if present, else
# python3). Results: DIR (default bench-gpu/) holds every round's JSON line and summary.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=3 train=0 out=bench-gpu
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --train) train=1; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "error: unknown argument $1; see the header of $0" >&2; exit 2 ;;
    esac
done
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
# DEVICE=cpu (and STEPS=2, which times two steps) runs every variant on the CPU: a check of the
# script itself on a machine without a GPU, whose figures mean nothing.
device="${DEVICE:-cuda}" steps="${STEPS:-}"
torch_device=$([ "$device" = cuda ] && echo cuda || echo cpu)
"$python" -c "import torch" 2>/dev/null || { echo "error: $python cannot import torch; see the header of $0" >&2; exit 1; }
if [ "$torch_device" = cuda ]; then
    "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || { echo "error: $python's torch sees no CUDA GPU on this machine" >&2; exit 1; }
fi
mkdir -p "$out"

build() { # features, target dir → path of the binary
    CARGO_TARGET_DIR="$2" cargo build --release --locked -p ember-cli --features "$1" >&2
    echo "$2/release/ember"
}
ember="${EMBER:-$(build cuda target/bench-gpu-plain)}"
fused="${EMBER_FUSED:-$(build cuda,fusion,autotune target/bench-gpu-fused)}"

config=configs/shakespeare-char-gpu.toml
timing=(--warmup 5 --min-steps 20 --min-seconds 10 --max-seconds 30)
[ -n "$steps" ] && timing=(--warmup 1 --min-steps "$steps" --min-seconds 0 --max-seconds 0)
common=(--config "$config" --device "$device" --set model.dropout=0 "${timing[@]/--min-steps/--steps}" --json)
torch=(python/reference.py --preset shakespeare-char --device "$torch_device" "${timing[@]}")
variants=(ember-f32 ember-bf16 fused-f32 fused-bf16 torch-f32 torch-bf16-compile)
run_variant() {
    case "$1" in
        ember-f32) "$ember" bench "${common[@]}" --set train.precision=f32 ;;
        ember-bf16) "$ember" bench "${common[@]}" --set train.precision=bf16 ;;
        fused-f32) "$fused" bench "${common[@]}" --set train.precision=f32 ;;
        fused-bf16) "$fused" bench "${common[@]}" --set train.precision=bf16 ;;
        torch-f32) "$python" "${torch[@]}" --dtype f32 ;;
        torch-bf16-compile) "$python" "${torch[@]}" --dtype bf16 --compile ;;
    esac
}
rm -f "$out"/*.jsonl
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        run_variant "$v" | tail -1 >> "$out/$v.jsonl"
        echo "round $r $v: $("$python" -c 'import json,sys; print(round(json.loads(sys.stdin.readlines()[-1])["tokens_per_s"]))' < "$out/$v.jsonl") tok/s"
    done
done

"$python" - "$out" "${variants[@]}" <<'PY' | tee "$out/summary.md"
import json, os, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
rows = {n: [json.loads(l) for l in open(os.path.join(out, n + ".jsonl"))] for n in names}
med = {n: statistics.median(r["tokens_per_s"] for r in rows[n]) for n in names}
best_torch = max((n for n in names if n.startswith("torch")), key=med.get)
print(f"| variant | tokens/s (median of {len(rows[names[0]])}) | vs {best_torch} |")
print("|---|---|---|")
for n in names:
    print(f"| {n} | {med[n]:,.0f} | {med[n] / med[best_torch]:.2f}× |")
PY

if [ "$train" = 1 ]; then
    [ -f data/tinyshakespeare.txt ] || scripts/get-data.sh
    # The whole run, bf16, fused build; the figure is the last validation loss at or before 90 s
    # of training (elapsed_s counts training and evaluation, not start-up).
    run=runs/bench-gpu-train
    "$fused" train --config "$config" --device "$device" --set train.precision=bf16 --out "$run" --overwrite \
        | tee "$out/train.log" | tail -3
    cp "$run/metrics.jsonl" "$out/train-metrics.jsonl"
    "$python" - "$out/train-metrics.jsonl" <<'PY' | tee -a "$out/summary.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
evals = [r for r in rows if r.get("val_loss") is not None]
within = [r for r in evals if r["elapsed_s"] <= 90]
last = evals[-1]
if within:
    r = within[-1]
    print(f"\nval loss {r['val_loss']:.4f} at step {r['step']}, {r['elapsed_s']:.0f} s of training")
print(f"val loss {last['val_loss']:.4f} at step {last['step']} (the end), {last['elapsed_s']:.0f} s")
PY
fi
