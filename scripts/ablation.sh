#!/usr/bin/env bash
# The attention variants side by side, at equal steps: tiny-shakespeare's validation loss and
# training throughput for each, and each synthetic task's gap to its entropy floor. Writes the
# tables into docs/attention.md between its "ablation" markers (and the raw figures to
# docs/ablation.json); nothing in them is typed by hand.
#
#   scripts/ablation.sh [STEPS]          (default 1000 steps of configs/shakespeare-char.toml)
#
# The synthetic tasks train configs/synth.toml for its 1500 steps. About 10 minutes on 2 cores.
# EMBER=path/to/ember uses a binary already built; otherwise this builds one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps="${1:-1000}"
scripts/get-data.sh >/dev/null
if [ -z "${EMBER:-}" ]; then
    cargo build --release --locked -p ember-cli 2>&1 | tail -1
    EMBER="${CARGO_TARGET_DIR:-target}/release/ember"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/ember-ablation.XXXXXX")"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"

# name | overrides
shakespeare=(
    "causal (default)|"
    "sliding window 16|model.attention=sliding_window model.window=16"
    "sliding window 16, last layer full (SSSL)|model.attention=sliding_window model.window=16 model.window_pattern=SSSL"
    "linear|model.attention=linear"
    "grouped-query, 2 key/value heads|model.n_kv_head=2"
    "multi-query, 1 key/value head|model.n_kv_head=1"
    "ALiBi|model.position=alibi"
    "no positions|model.position=none"
)
synthetic=(
    "copy|full|"
    "copy|sliding window 16 (< copy distance 25)|model.attention=sliding_window model.window=16"
    "copy|sliding window 32|model.attention=sliding_window model.window=32"
    "copy|linear|model.attention=linear"
    "recall|full|"
    "recall|sliding window 8|model.attention=sliding_window model.window=8"
    "recall|linear|model.attention=linear"
    "markov|full|"
    "markov|sliding window 8|model.attention=sliding_window model.window=8"
    "markov|linear|model.attention=linear"
)

train() { # out config overrides...
    local out="$1" config="$2"
    shift 2
    local sets=()
    for kv in "$@"; do sets+=(--set "$kv"); done
    "$EMBER" -q train --config "$config" --out "$out" "${sets[@]}"
}

median_tokens_per_s() {
    python3 -c 'import json,sys; v=sorted(json.loads(l)["tokens_per_s"] for l in open(sys.argv[1])); print(v[len(v)//2])' "$1/metrics.jsonl"
}

for entry in "${shakespeare[@]}"; do
    name="${entry%%|*}"
    read -r -a sets <<< "${entry#*|}"
    echo "ablation: tiny-shakespeare, $name"
    out="$work/shakespeare-$RANDOM"
    train "$out" configs/shakespeare-char.toml "train.max_steps=$steps" "${sets[@]}"
    eval_json="$("$EMBER" eval --run "$out" --json)"
    tps="$(median_tokens_per_s "$out")"
    python3 -c 'import json,sys; e=json.loads(sys.argv[3]); print(json.dumps({"corpus":"tinyshakespeare","variant":sys.argv[1],"overrides":sys.argv[2],"steps":e["step"],"val_loss":e["loss"],"tokens_per_s":float(sys.argv[4])}))' \
        "$name" "${entry#*|}" "$eval_json" "$tps" >> "$results"
done

for task in copy recall markov; do
    "$EMBER" synth --task "$task" --out "$work/$task.txt" >/dev/null
done
for entry in "${synthetic[@]}"; do
    task="${entry%%|*}"
    rest="${entry#*|}"
    name="${rest%%|*}"
    read -r -a sets <<< "${rest#*|}"
    echo "ablation: $task, $name"
    out="$work/$task-$RANDOM"
    train "$out" configs/synth.toml "data.path=$work/$task.txt" "${sets[@]}"
    # Overlapping windows: every scored token sees at least 64 before it (a copy line is 50).
    eval_json="$("$EMBER" eval --run "$out" --stride 64 --json)"
    python3 -c 'import json,sys; e=json.loads(sys.argv[4]); print(json.dumps({"corpus":sys.argv[1],"variant":sys.argv[2],"overrides":sys.argv[3],"steps":e["step"],"loss":e["loss"],"floor":e["entropy_floor"],"gap":e["gap_to_floor"],"gap_percent":e["gap_to_floor_percent"]}))' \
        "$task" "$name" "${rest#*|}" "$eval_json" >> "$results"
done

python3 - "$results" "$steps" docs/attention.md <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = sys.argv[2]
out = [f"tiny-shakespeare, {steps} steps of `configs/shakespeare-char.toml` each (`ember eval` on the validation split):", ""]
out += ["| variant | overrides | validation loss | tokens/s (median) |", "|---|---|---|---|"]
for r in rows:
    if r["corpus"] == "tinyshakespeare":
        out.append(f"| {r['variant']} | `{r['overrides'] or '—'}` | {r['val_loss']:.4f} | {r['tokens_per_s']:,.0f} |")
out += ["", "Synthetic tasks, 1500 steps of `configs/synth.toml` each (`ember eval --stride 64`):", ""]
out += ["| task | variant | loss (nats/char) | entropy floor | gap to the floor |", "|---|---|---|---|---|"]
for r in rows:
    if r["corpus"] != "tinyshakespeare":
        out.append(f"| {r['corpus']} | {r['variant']} | {r['loss']:.4f} | {r['floor']:.4f} | {r['gap']:+.4f} ({r['gap_percent']:+.1f}%) |")
doc = open(sys.argv[3]).read()
block = "<!-- ablation:begin (written by scripts/ablation.sh) -->\n" + "\n".join(out) + "\n<!-- ablation:end -->"
doc, n = re.subn(r"<!-- ablation:begin.*?<!-- ablation:end -->", lambda m: block, doc, flags=re.S)
assert n == 1, "docs/attention.md needs its ablation markers"
open(sys.argv[3], "w").write(doc)
print("\n".join(out))
PY
python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1])], indent=1))' "$results" > docs/ablation.json
echo "ablation: wrote the tables in docs/attention.md and docs/ablation.json"
