"""Tiny Hugging Face GPT-NeoX models, built with `transformers` from a random init, as test
fixtures for `ember import` (no hub download is needed or possible).

Writes two model directories under crates/ember-train/tests/data/hf/, each as
`save_pretrained` leaves it (config.json, safetensors, tokenizer.json, tokenizer_config.json),
plus expected.json with a token sequence and the logits `transformers` computes for it:

- `neox-tied`: ember's own architecture (rotary_pct 1.0, sequential residual, tied
  embeddings), a character-level tokenizer in the `tokenizers` format;
- `pythia-like`: Pythia's choices (rotary_pct 0.25, parallel residual, untied `embed_out`), a
  byte-level BPE tokenizer with fewer tokens than the embedding has rows (as Pythia pads its
  embedding), saved in two shards (model.safetensors.index.json).

    .venv/bin/pip install torch transformers tokenizers safetensors
    .venv/bin/python python/hf_fixtures.py

`crates/ember-train/tests/hf.rs` imports both and compares ember's logits with these (1e-5).
"""

import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/ember-train/tests/data/hf"
TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 4


def char_tokenizer(text):
    """One token per character, in the `tokenizers` format: a BPE model without merges, so that
    every character is its own token, and a decoder that joins them back without spaces."""
    chars = sorted(set(text))
    vocab = {c: i for i, c in enumerate(chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.Fuse()
    return tok


def bpe_tokenizer(text, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def build(name, tokenizer, config_kwargs, seed, shard=None):
    torch.manual_seed(seed)
    config = GPTNeoXConfig(**config_kwargs)
    model = GPTNeoXForCausalLM(config).eval()
    # A random init whose biases and norms are not all zeros and ones, so that every weight
    # mapping matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True, max_shard_size=shard or "1GB")
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    fast.save_pretrained(out)
    text = "First Citizen:\nSpeak, speak."
    ids = fast(text)["input_ids"][: config.max_position_embeddings]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
        prompt = torch.tensor([ids[:4]])
        greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
                                eos_token_id=None, pad_token_id=0)
    expected = {
        "source": "python/hf_fixtures.py",
        "text": text,
        "input_ids": ids,
        "logits": logits.tolist(),
        "greedy_from_first_4": greedy[0].tolist(),
    }
    (out / "expected.json").write_text(json.dumps(expected))
    files = sorted(p.name for p in out.iterdir())
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters; {files}")


def main():
    build(
        "neox-tied",
        char_tokenizer(TEXT),
        dict(vocab_size=len(set(TEXT)), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, hidden_act="gelu", rotary_pct=1.0, rotary_emb_base=10000,
             max_position_embeddings=32, layer_norm_eps=1e-5, use_parallel_residual=False,
             tie_word_embeddings=True, attention_bias=True, bos_token_id=None, eos_token_id=None),
        seed=1,
    )
    build(
        "pythia-like",
        bpe_tokenizer(TEXT, 280),
        dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000,
             max_position_embeddings=32, layer_norm_eps=1e-5, use_parallel_residual=True,
             tie_word_embeddings=False, attention_bias=True, bos_token_id=None, eos_token_id=None),
        seed=2,
        shard="60KB",
    )


if __name__ == "__main__":
    main()
