#!/usr/bin/env bash
# Runs ember's whole test suite: the command README.md names and CI calls.
#
#   scripts/test.sh
#
# Tests that train on real text read data/tinyshakespeare.txt, fetched first by
# scripts/get-data.sh (set EMBER_CORPUS to a local copy to skip the download). Everything is
# built in the release profile (Burn is far too slow unoptimised) into $CARGO_TARGET_DIR, or
# target/ by default.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/get-data.sh
export EMBER_TEST_CORPUS="$PWD/data/tinyshakespeare.txt"

cargo test --release --workspace --locked "$@"
