#!/usr/bin/env bash
# Runs ember's whole test suite: the command README.md names and CI calls.
#
#   scripts/test.sh
#
# 1. Fetches data/tinyshakespeare.txt (scripts/get-data.sh; set EMBER_CORPUS to a local copy
#    to skip the download): the tests that train read real text.
# 2. Runs every test in the release profile (Burn is far too slow unoptimised), with the wgpu
#    and remote backends compiled in. The wgpu tests need a Vulkan driver: on a machine without
#    a GPU, Mesa's lavapipe (Debian/Ubuntu: apt-get install mesa-vulkan-drivers). Without one
#    they fail; they never skip. The remote tests start `ember serve` processes on loopback.
# 3. Type-checks the CUDA build (--features cuda,cuda-nvrtc). DOCS_RS=1 stops cubecl's LLVM
#    bundler from downloading LLVM, which a type-check does not need; a real CUDA build needs
#    the download.
#
# Build outputs go to $CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/get-data.sh
export EMBER_TEST_CORPUS="$PWD/data/tinyshakespeare.txt"

cargo test --release --workspace --locked --features ember-cli/wgpu,ember-cli/remote "$@"

echo "test.sh: type-checking the CUDA build"
DOCS_RS=1 cargo check --release --locked -p ember-cli --features cuda,cuda-nvrtc
echo "test.sh: CUDA build type-checks"
