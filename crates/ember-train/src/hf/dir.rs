//! A Hugging Face model directory: read whole and checked before anything is used, written
//! beside its place and renamed in.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ember_data::Tokenizer;
use ember_data::files::{limit, read_regular_text};
use ember_model::GptConfig;
use ember_nn::Gelu;
use serde_json::{Value, json};

use super::config::{bad, check_exportable, config_from_hf, hf_config};
use super::weights::{from_hf_weights, read_tensors, to_hf_weights};
use crate::error::TrainError;
use crate::params::NamedData;

/// A GPT-NeoX model read from a Hugging Face directory.
pub struct HfModel {
    /// Its architecture as ember's `[model]`.
    pub config: GptConfig,
    /// Its parameters by ember's names, in Burn's layout.
    pub weights: BTreeMap<String, NamedData>,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
}

/// Reads `dir`: `config.json`, `model.safetensors` (or the shards a
/// `model.safetensors.index.json` lists) and `tokenizer.json`, checking that they fit
/// together; nothing is written.
pub fn read_dir(dir: &Path) -> Result<HfModel, TrainError> {
    if !dir.is_dir() {
        return Err(bad(
            dir,
            "is not a directory; pass a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)",
        ));
    }
    let config_path = dir.join("config.json");
    let text = read_regular_text(&config_path, limit::CONFIG).map_err(|e| {
        bad(
            dir,
            format!("has no readable config.json ({e}); it is not a Hugging Face model directory"),
        )
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(&config_path, format!("is not valid JSON: {e}")))?;
    let config = config_from_hf(&value, &config_path)?;

    let mut tensors = BTreeMap::new();
    let index = dir.join("model.safetensors.index.json");
    let single = dir.join("model.safetensors");
    if single.is_file() {
        read_tensors(&single, &mut tensors)?;
    } else if index.is_file() {
        let text = read_regular_text(&index, limit::STATE).map_err(TrainError::io("reading", &index))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(&index, format!("is not valid JSON: {e}")))?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| bad(&index, "has no \"weight_map\""))?;
        let mut files: Vec<&str> = map.values().filter_map(Value::as_str).collect();
        files.sort_unstable();
        files.dedup();
        for f in files {
            let path = dir.join(f);
            if Path::new(f).components().count() != 1 {
                return Err(bad(&index, format!("names a shard outside the directory: {f}")));
            }
            read_tensors(&path, &mut tensors)?;
        }
    } else {
        return Err(bad(
            dir,
            "has no model.safetensors nor model.safetensors.index.json (ember reads safetensors weights only)",
        ));
    }
    let weights = from_hf_weights(&config, tensors, dir)?;

    let tok_path = dir.join("tokenizer.json");
    let tok_text = read_regular_text(&tok_path, limit::TOKENIZER).map_err(|e| {
        bad(
            dir,
            format!("has no readable tokenizer.json ({e}); ember needs the tokenizer in the `tokenizers` format"),
        )
    })?;
    let tokenizer = Tokenizer::from_hf_json(&tok_text).map_err(|e| bad(&tok_path, e))?;
    if tokenizer.id_bound() > config.vocab_size {
        return Err(bad(
            &tok_path,
            format!(
                "has token ids up to {} but the embedding has {} rows (vocab_size): the tokenizer does not belong to this model",
                tokenizer.id_bound() - 1,
                config.vocab_size
            ),
        ));
    }
    Ok(HfModel {
        config,
        weights,
        tokenizer,
    })
}

/// What the model card of an export says.
pub struct Card {
    /// The run it came from.
    pub run: String,
    /// Its step.
    pub step: u64,
    /// Its validation loss, if evaluated.
    pub val_loss: Option<f64>,
    /// The corpus it was trained on.
    pub data: String,
}

/// Writes the Hugging Face directory `out` of `config`'s model with `weights` (ember's
/// names, Burn's layout) and `tokenizer`: first into a temporary directory beside it, renamed
/// into place once complete, so that a failure leaves nothing. `out` must not exist.
pub fn write_dir(
    out: &Path,
    config: &GptConfig,
    weights: &BTreeMap<String, NamedData>,
    tokenizer: &Tokenizer,
    card: &Card,
) -> Result<(), TrainError> {
    check_exportable(config).map_err(|m| bad(out, m))?;
    if out.exists() {
        return Err(bad(out, "exists already; choose another --out, or remove it first"));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(bad(
            out,
            format!("cannot be created: {} does not exist", parent.display()),
        ));
    }
    let name = out
        .file_name()
        .map_or("export".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_files(&tmp, config, weights, tokenizer, card)
        .and_then(|()| fs::rename(&tmp, out).map_err(TrainError::io("renaming into place", out)));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_files(
    dir: &Path,
    c: &GptConfig,
    weights: &BTreeMap<String, NamedData>,
    tok: &Tokenizer,
    card: &Card,
) -> Result<(), TrainError> {
    fs::create_dir_all(dir).map_err(TrainError::io("creating", dir))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(TrainError::io("writing", &path))
    };
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).expect("serialisable");
    write("config.json", &pretty(&hf_config(c)))?;
    let hf = to_hf_weights(c, weights);
    write("model.safetensors", &crate::checkpoint::safetensors_bytes(&hf))?;
    write("tokenizer.json", tok.to_hf_json().as_bytes())?;
    let tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": c.block_size,
        "clean_up_tokenization_spaces": false,
    });
    write("tokenizer_config.json", &pretty(&tokenizer_config))?;
    let generation = json!({ "bos_token_id": null, "eos_token_id": null, "pad_token_id": null });
    write("generation_config.json", &pretty(&generation))?;
    write("README.md", model_card(c, tok, card).as_bytes())
}

fn model_card(c: &GptConfig, tok: &Tokenizer, card: &Card) -> String {
    let params = ember_model::stats::param_count(c);
    let kind = match tok {
        Tokenizer::Char(_) => "character-level (one token per character)",
        Tokenizer::Bpe(_) => "byte-level BPE",
    };
    let val = card.val_loss.map_or("not evaluated at this step".to_string(), |v| {
        format!("{v:.4} nats/token (perplexity {:.3})", v.exp())
    });
    format!(
        "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- ember\n- gpt-neox\n---\n\n\
         # {run}, step {step}\n\n\
         A {layers}-layer GPT-NeoX model ({params:.2}M parameters) trained with ember, exported by \
         `ember export --format hf`.\n\n\
         | | |\n|---|---|\n\
         | layers, heads, width | {layers}, {heads}, {d} |\n\
         | context | {ctx} tokens |\n\
         | feed-forward | {ff} wide, {act} |\n\
         | positions | RoPE on {pct}% of each head (θ = {theta}) |\n\
         | residual | {residual} |\n\
         | embeddings | {tied} |\n\
         | tokenizer | {kind}, {vocab} tokens |\n\
         | data | {data} |\n\
         | validation loss | {val} |\n\n\
         ```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\
         model = AutoModelForCausalLM.from_pretrained(\"path/to/this/directory\")\n\
         tokenizer = AutoTokenizer.from_pretrained(\"path/to/this/directory\")\n```\n",
        run = card.run,
        step = card.step,
        layers = c.n_layer,
        params = params as f64 / 1e6,
        heads = c.n_head,
        d = c.d_model,
        ctx = c.block_size,
        ff = c.ff_width(),
        act = match c.gelu {
            Gelu::Erf => "exact GELU",
            Gelu::Tanh => "tanh-approximate GELU",
        },
        pct = c.rotary_pct * 100.0,
        theta = c.rope_theta,
        residual = if c.parallel_residual {
            "parallel (x + attn(ln1 x) + mlp(ln2 x))"
        } else {
            "sequential (pre-norm)"
        },
        tied = if c.tie_embeddings {
            "tied (the output head is the token embedding)"
        } else {
            "untied"
        },
        vocab = tok.vocab_size(),
        data = card.data,
    )
}
