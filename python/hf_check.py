"""Checks ember's Hugging Face interop against `transformers` itself, live.

    .venv/bin/python python/hf_check.py export RUN_DIR [--text FILE]
        exports RUN_DIR's latest checkpoint with `ember export --format hf`, loads it with
        AutoModelForCausalLM / AutoTokenizer (no custom code), and compares: the tokenizer's ids
        with ember's, the next-token logits after a held-out prompt, the mean loss over FILE
        (default: the run's validation text, re-read from its corpus tail), and greedy
        generation with `ember sample --temperature 0`.

    .venv/bin/python python/hf_check.py import
        builds a Pythia-style GPT-NeoX model with transformers from a random init (partial
        rotary 0.25, parallel residual, untied output head), imports it with `ember import`, and
        compares the logits and greedy generation.

Both print one JSON object with the figures and exit non-zero if a comparison fails.
EMBER=path/to/ember picks the binary (default target/release/ember).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

EMBER = os.environ.get("EMBER", "target/release/ember")
TOL = 1e-5


def ember(*args):
    return subprocess.run([EMBER, *args], check=True, capture_output=True, text=True).stdout


def attention_json(run, prompt):
    return json.loads(ember("attention", "--run", str(run), "--prompt", prompt, "--json"))


def greedy(model, ids, n):
    ids = torch.tensor([ids])
    with torch.no_grad():
        # An explicit attention mask: generate would otherwise guess one from the pad token.
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def check_export(run, text_file):
    run = Path(run)
    out = Path(tempfile.mkdtemp()) / "export"
    ember("export", "--run", str(run), "--format", "hf", "--out", str(out))
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    block = model.config.max_position_embeddings
    text = Path(text_file).read_text() if text_file else None
    if text is None:
        corpus = ember_corpus(run)
        text = corpus[-len(corpus) // 10:]  # the validation tail
    prompt = text[: 4 * block][: block]  # held-out text, at most a context of characters
    e = attention_json(run, prompt)
    ids = e["ids"]
    hf_ids = tok(prompt)["input_ids"][: len(ids)]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    logit_diff = (logits - torch.tensor(e["next_logits"])).abs().max().item()
    # The mean loss over the text, in ember eval's consecutive windows of the context.
    text_path = Path(tempfile.mkdtemp()) / "held-out.txt"
    text_path.write_text(text[:20000])
    ember_loss = json.loads(ember("eval", "--run", str(run), "--text", str(text_path), "--json"))["loss"]
    all_ids = tok(text[:20000])["input_ids"]
    nll, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(all_ids) - 1, block):
            window = all_ids[s : s + block + 1]
            if len(window) < 2:
                break
            lp = torch.log_softmax(model(torch.tensor([window[:-1]])).logits[0], -1)
            nll -= lp[torch.arange(len(window) - 1), torch.tensor(window[1:])].sum().item()
            count += len(window) - 1
    hf_loss = nll / count
    # Greedy continuation of a short prompt, within the context.
    short = prompt[:8]
    n = block - len(tok(short)["input_ids"])
    ember_text = ember("sample", "--run", str(run), "--prompt", short, "--temperature", "0", "--max-new-tokens", str(n))
    hf_text = short + tok.decode(greedy(model, tok(short)["input_ids"], n))
    report = {
        "export": str(out),
        "files": sorted(p.name for p in out.iterdir()),
        "tokenizer_ids_equal": hf_ids == ids,
        "prompt_tokens": len(ids),
        "max_abs_logit_difference": logit_diff,
        "ember_loss": ember_loss,
        "transformers_loss": hf_loss,
        "loss_difference": abs(ember_loss - hf_loss),
        "greedy_text_equal": ember_text.rstrip("\n") == hf_text.rstrip("\n"),
        "greedy_tokens": n,
    }
    ok = report["tokenizer_ids_equal"] and logit_diff < TOL and report["loss_difference"] < TOL and report["greedy_text_equal"]
    return report, ok


def ember_corpus(run):
    import tomllib

    config = tomllib.loads((run / "config.toml").read_text())
    return Path(config["data"]["path"]).read_text()


def check_import():
    work = Path(tempfile.mkdtemp())
    src = work / "pythia-like"
    torch.manual_seed(7)
    config = GPTNeoXConfig(vocab_size=97, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                           intermediate_size=256, hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000,
                           max_position_embeddings=64, layer_norm_eps=1e-5, use_parallel_residual=True,
                           tie_word_embeddings=False, attention_bias=True, bos_token_id=None, eos_token_id=None)
    model = GPTNeoXForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # peaked logits: greedy choices far from ties
    model.save_pretrained(src, max_shard_size="200KB")
    # A character-level tokenizer over printable ASCII, in the tokenizers format.
    from tokenizers import Tokenizer, models, decoders
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
    t = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    t.decoder = decoders.Fuse()
    PreTrainedTokenizerFast(tokenizer_object=t).save_pretrained(src)
    run = work / "run"
    ember("import", "--from", str(src), "--out", str(run))
    prompt = "To be, or not to be, that is the question:\nWhether 'tis"
    e = attention_json(run, prompt)
    with torch.no_grad():
        logits = model(torch.tensor([e["ids"]])).logits[0, -1]
    diff = (logits - torch.tensor(e["next_logits"])).abs().max().item()
    short = "To be"
    n = 40
    tok = AutoTokenizer.from_pretrained(src)
    ember_text = ember("sample", "--run", str(run), "--prompt", short, "--temperature", "0", "--max-new-tokens", str(n))
    hf_text = short + tok.decode(greedy(model, tok(short)["input_ids"], n))
    report = {
        "source": str(src),
        "shards": sorted(p.name for p in src.glob("*.safetensors")),
        "config": {"rotary_pct": 0.25, "use_parallel_residual": True, "tie_word_embeddings": False},
        "max_abs_logit_difference": diff,
        "greedy_text_equal": ember_text.rstrip("\n") == hf_text.rstrip("\n"),
    }
    return report, diff < TOL and report["greedy_text_equal"]


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "export":
        text = sys.argv[sys.argv.index("--text") + 1] if "--text" in sys.argv else None
        report, ok = check_export(sys.argv[2], text)
    elif len(sys.argv) == 2 and sys.argv[1] == "import":
        report, ok = check_import()
    else:
        sys.exit(__doc__)
    print(json.dumps(report, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
