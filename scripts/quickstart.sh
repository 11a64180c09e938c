#!/usr/bin/env bash
# The main job, end to end: fetch tiny-shakespeare, build ember, train the default small
# config on the CPU, evaluate it on the held-out split, print a sample, and write the training
# report and the attention explorer into the run directory.
#
#   scripts/quickstart.sh [CONFIG]        (default: configs/shakespeare-char.toml)
#
# The run directory is runs/<config name>; an earlier run there is replaced.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

config="${1:-configs/shakespeare-char.toml}"
run="runs/$(basename "$config" .toml)"

scripts/get-data.sh
cargo build --release --locked -p ember-cli
ember="${CARGO_TARGET_DIR:-target}/release/ember"

"$ember" train --config "$config" --out "$run" --overwrite
"$ember" eval --run "$run"
echo
echo "--- sample (temperature 0.8, top-k 50) ---"
"$ember" sample --run "$run" --max-new-tokens 500 --temperature 0.8 --top-k 50
echo
"$ember" report --run "$run"
"$ember" attention --run "$run"
echo "open $run/report.html and $run/attention.html in a browser"
