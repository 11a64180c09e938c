#!/usr/bin/env bash
# Crash test at full size: trains a config twice, once straight through and once killed with
# SIGKILL at random moments (at least KILLS times) and resumed after each kill, then checks
# that both runs end with bit-identical weights, optimiser state and logged losses.
#
#   scripts/kill-test.sh [CONFIG] [STEPS] [KILLS]
#       CONFIG  default configs/shakespeare-char.toml
#       STEPS   default 400 (train.max_steps of both runs)
#       KILLS   default 12
#
# A CI-sized version of the same test runs in the test suite
# (crates/ember-cli/tests/robustness.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

config="${1:-configs/shakespeare-char.toml}"
steps="${2:-400}"
kills_wanted="${3:-12}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ember-kill.XXXXXX")"
trap '[ "${status:-1}" = 0 ] && rm -rf "$work" || echo "kill-test: runs kept in $work"' EXIT

scripts/get-data.sh >/dev/null
cargo build --release --locked -p ember-cli 2>&1 | tail -1
ember="${CARGO_TARGET_DIR:-target}/release/ember"
[[ "$ember" = /* ]] || ember="$PWD/$ember" # absolute: the runs work in their own directory
set_args=(--set "train.max_steps=$steps" --set train.checkpoint_interval=25 --set train.eval_interval=50 --set train.log_interval=1)

echo "kill-test: uninterrupted run of $steps steps"
t0=$(date +%s)
"$ember" -q train --config "$config" --out "$work/straight" "${set_args[@]}"
straight_s=$(( $(date +%s) - t0 ))
echo "kill-test: took ${straight_s}s; now killing a second run at random moments"

RANDOM=4242
kills=0
attempts=0
while (( kills < kills_wanted )); do
    attempts=$((attempts + 1))
    if compgen -G "$work/killed/checkpoints/step-*" >/dev/null; then
        cmd=("$ember" -q train --resume "$work/killed")
    else
        cmd=("$ember" -q train --config "$config" --out "$work/killed" --overwrite "${set_args[@]}")
    fi
    "${cmd[@]}" &
    pid=$!
    # Up to the straight run's duration / kills, so that kills land all along the run.
    max_ms=$(( straight_s * 1000 / kills_wanted + 500 ))
    sleep "$(awk -v r=$RANDOM -v m=$max_ms 'BEGIN { printf "%.3f", (r % m) / 1000 }')"
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        kills=$((kills + 1))
        last=$(ls "$work/killed/checkpoints" 2>/dev/null | grep '^step-' | tail -1 || true)
        echo "kill-test: kill $kills (latest checkpoint: ${last:-none})"
    else
        wait "$pid"
        echo "kill-test: the run finished before the kill; starting over"
        rm -rf "$work/killed"
    fi
done
"$ember" -q train --resume "$work/killed"

final=$(printf 'step-%08d' "$steps")
status=0
for f in model.safetensors optimizer.safetensors; do
    a=$(sha256sum "$work/straight/checkpoints/$final/$f" | cut -d' ' -f1)
    b=$(sha256sum "$work/killed/checkpoints/$final/$f" | cut -d' ' -f1)
    if [[ "$a" == "$b" ]]; then echo "kill-test: $f identical (sha256 $a)"; else echo "kill-test: $f DIFFERS ($a vs $b)"; status=1; fi
done
losses() { python3 -c 'import json,sys; print("\n".join(json.dumps([r["step"], r["train_loss"], r.get("val_loss")]) for r in map(json.loads, open(sys.argv[1]))))' "$1"; }
if diff <(losses "$work/straight/metrics.jsonl") <(losses "$work/killed/metrics.jsonl") >/dev/null; then
    echo "kill-test: all $steps logged losses identical"
else
    echo "kill-test: logged losses DIFFER"; status=1
fi
echo "kill-test: survived $kills SIGKILLs in $attempts attempts; $( (( status == 0 )) && echo PASS || echo FAIL)"
exit $status
