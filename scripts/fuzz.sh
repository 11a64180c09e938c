#!/usr/bin/env bash
# Fuzzes ember's loaders for longer than the test suite does: seeded mutations of every kind
# of file ember reads (configs, tokenizer.json, token files, meta.json, a checkpoint's manifest,
# state and safetensors re-signed so the mutation reaches its loader, Hugging Face model
# directories), fed to the real loaders. A panic fails the run and saves its input.
#
#   scripts/fuzz.sh [SECONDS] [SEED]
#       SECONDS  default 600, shared by all targets
#       SEED     default: a new one from the clock (printed; pass it again to repeat a run)
#
# The test suite runs the same harness for 30 s with seed 1
# (crates/ember-train/tests/fuzz.rs). Inputs that once made a loader panic belong in
# crates/ember-train/tests/data/fuzz/<target>/, which every run replays first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export EMBER_FUZZ_SECONDS="${1:-600}"
export EMBER_FUZZ_SEED="${2:-$(date +%s)}"
echo "fuzz.sh: ${EMBER_FUZZ_SECONDS} s, seed ${EMBER_FUZZ_SEED}"
cargo test --release --locked -p ember-train --test fuzz -- --nocapture 2>&1 \
    | grep -v "^The OrderedVocab you are attempting to save contains holes"
