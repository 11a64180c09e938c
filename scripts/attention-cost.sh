#!/usr/bin/env bash
# What attention costs against the context length, for the docs: runs `ember bench --attention`
# (every variant, contexts 64 … 4096), writes the figure to docs/images/attention-cost.png and
# the tables into docs/attention.md between its "cost" markers. About two minutes on 2 cores.
#
#   scripts/attention-cost.sh [extra ember bench arguments, e.g. --contexts 64,256,1024,4096,8192]
#
# EMBER=path/to/ember uses a binary already built; otherwise this builds one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${EMBER:-}" ]; then
    cargo build --release --locked -p ember-cli 2>&1 | tail -1
    EMBER="${CARGO_TARGET_DIR:-target}/release/ember"
fi
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
"$EMBER" bench --attention --seconds-per-point 2 --json --png docs/images/attention-cost.png "$@" > "$json"
python3 - "$json" docs/attention.md <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
s = d["shape"]
rows = d["variants"]
contexts = [p["context"] for p in rows[0]["points"]]
out = [f"`ember bench --attention` ({s['batch']} sequence × {s['heads']} heads of {s['d_head']}, sliding window {s['window']}, "
       f"on {d['device']}; exponents over the three longest contexts):", ""]
head = "| variant | " + " | ".join(str(c) for c in contexts) + " | exponent |"
sep = "|---|" + "---|" * (len(contexts) + 1)
out += ["Forward + backward time, milliseconds:", "", head, sep]
for r in rows:
    out.append(f"| {r['name']} | " + " | ".join(f"{p['ms']:.2f}" for p in r["points"]) + f" | {r['time_exponent']:.2f} |")
out += ["", "Peak memory allocated, MiB:", "", head, sep]
for r in rows:
    if r["memory_exponent"] is not None:
        out.append(f"| {r['name']} | " + " | ".join(f"{p['bytes'] / 2**20:.1f}" for p in r["points"]) + f" | {r['memory_exponent']:.2f} |")
doc = open(sys.argv[2]).read()
block = "<!-- cost:begin (written by scripts/attention-cost.sh) -->\n" + "\n".join(out) + "\n<!-- cost:end -->"
doc, n = re.subn(r"<!-- cost:begin.*?<!-- cost:end -->", lambda m: block, doc, flags=re.S)
assert n == 1, "docs/attention.md needs its cost markers"
open(sys.argv[2], "w").write(doc)
PY
echo "attention-cost: wrote docs/images/attention-cost.png and the tables in docs/attention.md"
