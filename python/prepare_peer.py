"""The peer `ember prepare` is measured against, and the corpus it is measured on.

    python python/prepare_peer.py make --source data/tinyshakespeare.txt --out DIR --gb 2
    python python/prepare_peer.py encode --tokenizer T.json --corpus DIR [--check DATASET]

`make` writes a corpus of about GB gigabytes of text: "books" (plain .txt files of 1-8 MB,
some gzip-compressed) and "web pages" (JSONL records of 1-20 kB, plain, gzip and zstd), each
document a random sequence of the source's lines, so the words are real and the documents
differ. Deterministic for a given --seed.

`encode` reads the same files in the same order as ember (recursive, name order), cuts long
documents at the same places (after a line break between two visible ASCII characters, once
past 256 KiB), and encodes everything with Hugging Face `tokenizers`' `encode_batch` on every
core, appending the end-of-text id after each document. It prints the tokens and MB/s as
JSON. With --check it then compares its ids with the dataset's shards, document by document
by document, train and val (documents i with floor((i+1)*f) > floor(i*f) are val), and
prints whether every id is equal. The comparison runs after each batch is encoded and timed
alike; use the figures of a run without --check for speed.
"""

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import time

PIECE = 256 << 10
MAX_PIECE = 4 * PIECE


def make(args):
    import numpy as np

    lines = [l + "\n" for l in open(args.source, encoding="utf-8").read().split("\n") if l.strip()]
    rng = np.random.default_rng(args.seed)
    target = int(args.gb * 1e9)
    os.makedirs(args.out, exist_ok=True)
    written, n = 0, 0

    def doc(nbytes):
        out, size = [], 0
        while size < nbytes:
            # Runs of consecutive lines (a speech), from a random place.
            start = int(rng.integers(0, len(lines) - 40))
            run = lines[start : start + int(rng.integers(2, 40))]
            out.extend(run)
            size += sum(len(l) for l in run)
            out.append("\n")
        return "".join(out)

    while written < target:
        kind = n % 6
        if kind in (0, 1):  # a book: .txt, every other one gzip-compressed
            text = doc(int(rng.integers(1_000_000, 8_000_000)))
            path = os.path.join(args.out, "books", f"{n:05}.txt")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = text.encode()
            if kind == 1:
                with gzip.open(path + ".gz", "wb", compresslevel=1) as f:
                    f.write(data)
            else:
                open(path, "wb").write(data)
            written += len(data)
        else:  # web pages: 20 MB of JSONL records
            records, size = [], 0
            while size < 20_000_000:
                t = doc(int(rng.integers(1_000, 20_000)))
                records.append(json.dumps({"text": t, "id": n}) + "\n")
                size += len(t.encode())
            data = "".join(records).encode()
            path = os.path.join(args.out, "web", f"{n:05}.jsonl")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if kind == 2:
                with gzip.open(path + ".gz", "wb", compresslevel=1) as f:
                    f.write(data)
            elif kind == 3:
                subprocess.run(["zstd", "-q", "-1", "-o", path + ".zst"], input=data, check=True)
            else:
                open(path, "wb").write(data)
            written += size
        n += 1
    print(json.dumps({"files": n, "text_bytes": written}))


def files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            stem = name.removesuffix(".gz").removesuffix(".zst")
            if stem.endswith(".txt") or stem.endswith(".jsonl"):
                out.append(os.path.join(dirpath, name))
    # ember sorts each directory's entries (files and directories together) by name.
    return sorted(out, key=lambda p: os.path.relpath(p, root).split(os.sep))


def open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        return io.BytesIO(subprocess.run(["zstd", "-dcq", path], capture_output=True, check=True).stdout)
    return open(path, "rb")


def visible(b):
    return 0x21 <= b <= 0x7E


def pieces(data):
    """ember's cut: after a line break between two visible ASCII characters, past PIECE."""
    out = []
    while len(data) > MAX_PIECE:
        cut = None
        i = data.find(b"\n", PIECE)
        while 0 <= i < MAX_PIECE - 1:
            if visible(data[i - 1]) and visible(data[i + 1]):
                cut = i + 1
                break
            i = data.find(b"\n", i + 1)
        if cut is None:
            cut = MAX_PIECE
            while data[cut] & 0xC0 == 0x80:
                cut -= 1
        out.append(data[:cut])
        data = data[cut:]
    out.append(data)
    return [p.decode() for p in out]


def documents(root, field="text"):
    """(pieces of one document) for every document, in ember's order."""
    for path in files(root):
        with open_text(path) as f:
            if path.removesuffix(".gz").removesuffix(".zst").endswith(".jsonl"):
                for line in f:
                    if line.strip():
                        t = json.loads(line)[field]
                        if t:
                            yield pieces(t.encode())
            else:
                yield pieces(f.read())


class Split:
    """A dataset split's ids, read in order across its shards."""

    def __init__(self, dataset, meta, split):
        self.files = [os.path.join(dataset, s["file"]) for s in meta[split]["shards"]]
        self.f, self.width = None, 2

    def take(self, n):
        import numpy as np

        out = []
        while n > 0:
            if self.f is None:
                if not self.files:
                    break
                self.f = open(self.files.pop(0), "rb")
                head = self.f.read(24)
                self.width = int.from_bytes(head[8:12], "little")
            raw = self.f.read(n * self.width)
            if not raw:
                self.f = None
                continue
            out.append(np.frombuffer(raw, dtype=np.uint16 if self.width == 2 else np.uint32).astype(np.uint32))
            n -= len(raw) // self.width
        return np.concatenate(out) if out else np.zeros(0, dtype=np.uint32)

    def done(self):
        return len(self.take(1)) == 0


def encode(args):
    import numpy as np
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(args.tokenizer)
    eos = tok.token_to_id("<|endoftext|>")
    start = time.perf_counter()
    batch, ends = [], []
    tokens, text_bytes, docs, mismatch = 0, 0, 0, None
    if args.check:
        meta = json.load(open(os.path.join(args.check, "meta.json")))
        f = meta["prepared_with"]["val_fraction"]
        splits = {False: Split(args.check, meta, "train"), True: Split(args.check, meta, "val")}

    def flush():
        nonlocal tokens, docs, mismatch
        if args.fast:
            encs = tok.encode_batch_fast(batch, add_special_tokens=False)
        else:
            encs = tok.encode_batch(batch, add_special_tokens=False)
        doc = []
        for e, end in zip(encs, ends):
            doc.extend(e.ids)
            if end:
                doc.append(eos)
                tokens += len(doc)
                if args.check and mismatch is None:
                    val = ((docs + 1) * f) // 1 > (docs * f) // 1
                    got = splits[val].take(len(doc))
                    if not np.array_equal(got, np.array(doc, dtype=np.uint32)):
                        mismatch = docs
                docs += 1
                doc = []
        assert not doc, "batches end with a document"
        batch.clear()
        ends.clear()

    size = 0
    for ps in documents(args.corpus):
        for i, p in enumerate(ps):
            batch.append(p)
            ends.append(i == len(ps) - 1)
            size += len(p)
            text_bytes += len(p.encode())
        if size >= 16 << 20:
            flush()
            size = 0
    if batch:
        flush()
    secs = time.perf_counter() - start
    result = {"tokens": tokens, "documents": docs, "text_bytes": text_bytes, "seconds": secs,
              "mb_per_s": text_bytes / 1e6 / secs}
    if args.check:
        result["ids_equal"] = mismatch is None and splits[False].done() and splits[True].done()
        if mismatch is not None:
            result["first_different_document"] = mismatch
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--source", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--gb", type=float, default=2.0)
    m.add_argument("--seed", type=int, default=1)
    e = sub.add_parser("encode")
    e.add_argument("--tokenizer", required=True)
    e.add_argument("--corpus", required=True)
    e.add_argument("--check", help="a dataset directory to compare ids with")
    e.add_argument("--fast", action="store_true", help="encode_batch_fast (no offsets)")
    args = p.parse_args()
    make(args) if args.cmd == "make" else encode(args)


if __name__ == "__main__":
    main()
