#!/usr/bin/env bash
# Data preparation at scale: `ember prepare` against Hugging Face `tokenizers`' encode_batch on
# the same tokenizer and text, in the same run, with both peak memory figures; then a training
# run on the result, whose peak memory is compared with the same run on tiny-shakespeare.
#
#   scripts/bench-prepare.sh [GB]          (default 2)
#
# Needs a Python with numpy and tokenizers (python3 -m venv .venv && .venv/bin/pip install numpy
# tokenizers; PYTHON names another), zstd and GNU time (/usr/bin/time). The corpus is written
# to $CORPUS (default data/bench-corpus, kept between runs) by python/prepare_peer.py make:
# books as .txt and .txt.gz, web pages as .jsonl, .jsonl.gz and .jsonl.zst. Everything else
# goes to a temporary directory. EMBER=path/to/ember uses a binary already built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

gb="${1:-2}"
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
"$python" -c "import numpy, tokenizers" 2>/dev/null || { echo "error: $python cannot import numpy and tokenizers; see the header of this script" >&2; exit 1; }
command -v zstd >/dev/null || { echo "error: zstd is not installed (apt-get install zstd)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: GNU time is not installed (apt-get install time)" >&2; exit 1; }
scripts/get-data.sh >/dev/null
if [ -n "${EMBER:-}" ]; then
    ember="$EMBER"
else
    cargo build --release --locked -p ember-cli 2>&1 | tail -1
    ember="${CARGO_TARGET_DIR:-target}/release/ember"
fi
corpus="${CORPUS:-data/bench-corpus}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

if [ ! -f "$corpus/.made-$gb" ]; then
    rm -rf "$corpus"
    echo "writing a corpus of $gb GB to $corpus"
    "$python" python/prepare_peer.py make --source data/tinyshakespeare.txt --out "$corpus" --gb "$gb"
    touch "$corpus/.made-$gb"
fi
echo "corpus: $(find "$corpus" -type f ! -name '.made-*' | wc -l) files, $(du -sh "$corpus" | cut -f1) on disk"

peak() { grep "Maximum resident set size" "$1" | awk '{printf "%.0f", $6 / 1024}'; }
wall() { grep "Elapsed (wall clock)" "$1" | awk '{print $8}'; }

cat > "$work/data.toml" <<TOML
[data]
path = "$corpus"
tokenizer = "bpe"
vocab_size = 8192
TOML

echo "1. ember prepare, training a BPE tokenizer (8192 ids) on a sample of the corpus"
/usr/bin/time -v "$ember" -q prepare --config "$work/data.toml" --out "$work/bpe" 2> "$work/time-train" > "$work/out-train" || { cat "$work/time-train"; exit 1; }
cat "$work/out-train"
echo "   wall $(wall "$work/time-train"), peak RSS $(peak "$work/time-train") MiB"
tok="$work/bpe/tokenizer.json"

# Alternating: ember with that tokenizer.json, the peer, ember, the peer again comparing every
# id with ember's dataset (its speed then includes the comparison; its memory is not used).
for round in 1 2; do
    /usr/bin/time -v "$ember" -q prepare --config "$work/data.toml" --set "data.tokenizer=$tok" --out "$work/ds" --overwrite \
        2> "$work/time-ember-$round" > "$work/out-ember-$round" || { cat "$work/time-ember-$round"; exit 1; }
    check=(); [ "$round" = 2 ] && check=(--check "$work/ds")
    /usr/bin/time -v "$python" python/prepare_peer.py encode --tokenizer "$tok" --corpus "$corpus" "${check[@]}" \
        2> "$work/time-peer-$round" > "$work/out-peer-$round" || { cat "$work/time-peer-$round"; exit 1; }
done
text_mb=$("$python" -c "import json; print(json.load(open('$work/ds/meta.json'))['text_bytes'] / 1e6)")
for round in 1 2; do
    e_s=$(grep '^time' "$work/out-ember-$round" | sed 's/.*(\([0-9.]*\) s encoding.*/\1/')
    p_s=$("$python" -c "import json; print(round(json.load(open('$work/out-peer-$round'))['seconds'], 1))")
    echo "2.$round ember prepare: ${e_s} s encoding ($("$python" -c "print(round($text_mb / $e_s, 1))") MB/s), wall $(wall "$work/time-ember-$round"), peak RSS $(peak "$work/time-ember-$round") MiB"
    note=""; [ "$round" = 2 ] && note=" (comparing ids as it goes)"
    echo "    tokenizers encode_batch: ${p_s} s ($("$python" -c "print(round($text_mb / $p_s, 1))") MB/s)$note, wall $(wall "$work/time-peer-$round"), peak RSS $(peak "$work/time-peer-$round") MiB"
done
cat "$work/out-ember-2"
echo "3. the dataset's ids against tokenizers' (every document): $(cat "$work/out-peer-2")"

echo "4. training on it, and on tiny-shakespeare with the same tokenizer: peak RSS"
printf '[data]\npath = "data/tinyshakespeare.txt"\ntokenizer = "%s"\n' "$tok" > "$work/small.toml"
train() { # $1: data.path, $2: name
    /usr/bin/time -v "$ember" -q train --config configs/shakespeare-char.toml --set "data.path=$1" --set "data.tokenizer=$tok" \
        --set train.max_steps=50 --set train.warmup_steps=10 --set train.eval_interval=50 --set train.eval_iters=2 --out "$work/run-$2" 2> "$work/time-run-$2" \
        || { cat "$work/time-run-$2"; exit 1; }
    echo "   $2: wall $(wall "$work/time-run-$2"), peak RSS $(peak "$work/time-run-$2") MiB"
}
train "$work/ds" "large"
train data/tinyshakespeare.txt "small"
