//! Hugging Face interop: a model as a `GPTNeoXForCausalLM` directory that `transformers` loads
//! with no custom code, and such a directory as ember's model.
//!
//! ember's architecture is GPT-NeoX's with `use_parallel_residual = false`,
//! `rotary_pct = 1.0`, `hidden_act = "gelu"` and tied embeddings; the `[model]` keys
//! `parallel_residual`, `rotary_pct`, `tie_embeddings` and `d_ff` cover the others (Pythia).
//! Parameter names and layouts map one to one, except that GPT-NeoX groups the rows of the
//! fused q/k/v projection per head (`[q₀ k₀ v₀ | q₁ k₁ v₁ | …]`) where ember keeps
//! `[q | k | v]`, and that its linear weights are `[out, in]` (Burn's are `[in, out]`):
//!
//! | ember | GPT-NeoX |
//! |---|---|
//! | `wte.weight` | `gpt_neox.embed_in.weight` |
//! | `blocks.N.ln1.*`, `blocks.N.ln2.*` | `gpt_neox.layers.N.input_layernorm.*`, `….post_attention_layernorm.*` |
//! | `blocks.N.attn.qkv.*` | `gpt_neox.layers.N.attention.query_key_value.*`, rows regrouped |
//! | `blocks.N.attn.proj.*` | `gpt_neox.layers.N.attention.dense.*` |
//! | `blocks.N.mlp.fc.*`, `blocks.N.mlp.proj.*` | `….mlp.dense_h_to_4h.*`, `….mlp.dense_4h_to_h.*` |
//! | `ln_f.*` | `gpt_neox.final_layer_norm.*` |
//! | `lm_head.weight` (untied) | `embed_out.weight` (`lm_head.weight` in some checkpoints) |

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ember_data::Tokenizer;
use ember_data::files::{limit, read_regular, read_regular_text};
use ember_model::GptConfig;
use ember_model::config::Attention;
use ember_nn::{Gelu, Position};
use safetensors::{Dtype, SafeTensors};
use serde_json::{Value, json};

use crate::error::TrainError;
use crate::params::NamedData;

/// The architecture `config.json` must name.
pub const ARCHITECTURE: &str = "GPTNeoXForCausalLM";

fn bad(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Hf {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Refuses a model GPT-NeoX cannot express, naming what cannot be mapped.
pub fn check_exportable(c: &GptConfig) -> Result<(), String> {
    let no = |what: String| {
        Err(format!(
            "{what} has no GPT-NeoX equivalent, so `transformers` could not load the model"
        ))
    };
    if c.attention != Attention::Causal {
        return no(format!(
            "model.attention = \"{}\"",
            ember_model::config::attention_name(c.attention)
        ));
    }
    if c.kv_heads() != c.n_head {
        return no(format!("model.n_kv_head = {} (grouped-query attention)", c.kv_heads()));
    }
    if c.position != Position::Rope {
        return no(format!(
            "model.position = \"{}\"",
            ember_model::config::position_name(c.position)
        ));
    }
    Ok(())
}

/// `config.json` of the GPT-NeoX model equal to `c`. RoPE's settings are written both as
/// `transformers` 5 reads them (`rope_parameters`) and as earlier versions do.
pub fn hf_config(c: &GptConfig) -> Value {
    json!({
        "architectures": [ARCHITECTURE],
        "model_type": "gpt_neox",
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "intermediate_size": c.ff_width(),
        "hidden_act": match c.gelu { Gelu::Erf => "gelu", Gelu::Tanh => "gelu_new" },
        "rotary_pct": c.rotary_pct,
        "rotary_emb_base": c.rope_theta,
        "rope_parameters": { "rope_type": "default", "rope_theta": c.rope_theta, "partial_rotary_factor": c.rotary_pct },
        "max_position_embeddings": c.block_size,
        "layer_norm_eps": c.ln_eps,
        "use_parallel_residual": c.parallel_residual,
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": true,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
        "bos_token_id": null,
        "eos_token_id": null,
        "pad_token_id": null,
        "torch_dtype": "float32",
    })
}

/// The model of a GPT-NeoX `config.json`, or why ember cannot hold it (`path` names the file).
pub fn config_from_hf(v: &Value, path: &Path) -> Result<GptConfig, TrainError> {
    let architectures: Vec<&str> = v["architectures"]
        .as_array()
        .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect());
    if !architectures.contains(&ARCHITECTURE) && v["model_type"] != "gpt_neox" {
        let named = if architectures.is_empty() {
            format!("model_type {}", v["model_type"])
        } else {
            architectures.join(", ")
        };
        return Err(bad(
            path,
            format!("the architecture is {named}; ember imports {ARCHITECTURE} (GPT-NeoX, Pythia) only"),
        ));
    }
    let int = |key: &str| -> Result<usize, TrainError> {
        v[key]
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| bad(path, format!("\"{key}\" is missing or not a whole number")))
    };
    let gelu = match v["hidden_act"].as_str().unwrap_or("gelu") {
        "gelu" => Gelu::Erf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Gelu::Tanh,
        other => {
            return Err(bad(
                path,
                format!(
                    "hidden_act \"{other}\" is not supported; ember's feed-forward is GELU (\"gelu\", or the tanh approximations \"gelu_new\", \"gelu_pytorch_tanh\", \"gelu_fast\")"
                ),
            ));
        }
    };
    if v["attention_bias"] == false {
        return Err(bad(
            path,
            "attention_bias is false; ember's attention projections have biases",
        ));
    }
    let rope = &v["rope_parameters"];
    let rope = if rope.is_object() { rope } else { &v["rope_scaling"] };
    if let Some(kind) = rope["rope_type"].as_str().or(rope["type"].as_str())
        && kind != "default"
    {
        return Err(bad(
            path,
            format!("RoPE type \"{kind}\" (scaled RoPE) is not supported; ember's RoPE is the default one"),
        ));
    }
    // transformers' defaults when the keys are absent: a quarter of each head, base 10000.
    let rotary_pct = rope["partial_rotary_factor"]
        .as_f64()
        .or(v["rotary_pct"].as_f64())
        .unwrap_or(0.25);
    let rope_theta = rope["rope_theta"]
        .as_f64()
        .or(v["rotary_emb_base"].as_f64())
        .unwrap_or(10000.0);
    let (d_model, n_head) = (int("hidden_size")?, int("num_attention_heads")?);
    let d_ff = int("intermediate_size")?;
    let config = GptConfig {
        n_layer: int("num_hidden_layers")?,
        n_head,
        d_model,
        block_size: int("max_position_embeddings")?,
        dropout: 0.0,
        vocab_size: int("vocab_size")?,
        rope_theta,
        ln_eps: v["layer_norm_eps"].as_f64().unwrap_or(1e-5),
        gelu,
        n_kv_head: None,
        d_ff: (d_ff != 4 * d_model).then_some(d_ff),
        attention: Attention::Causal,
        window: None,
        window_pattern: None,
        position: Position::Rope,
        rotary_pct,
        parallel_residual: v["use_parallel_residual"].as_bool().unwrap_or(true),
        tie_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
    };
    config
        .validate_complete()
        .map_err(|e| bad(path, format!("its model does not fit ember: {e}")))?;
    Ok(config)
}

/// Which ember parameter each GPT-NeoX one is, and how its layout differs.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// The same values in the same order.
    Same,
    /// A linear weight: transposed.
    Linear,
    /// The fused q/k/v weight: transposed, rows regrouped per head.
    QkvWeight,
    /// The fused q/k/v bias: regrouped per head.
    QkvBias,
}

/// `(ember name, GPT-NeoX name, layout)` of every parameter of `c`.
fn names(c: &GptConfig) -> Vec<(String, String, Layout)> {
    let mut out = vec![(
        "wte.weight".to_string(),
        "gpt_neox.embed_in.weight".to_string(),
        Layout::Same,
    )];
    for l in 0..c.n_layer {
        let (e, h) = (format!("blocks.{l}."), format!("gpt_neox.layers.{l}."));
        let pairs = [
            ("ln1.weight", "input_layernorm.weight", Layout::Same),
            ("ln1.bias", "input_layernorm.bias", Layout::Same),
            ("ln2.weight", "post_attention_layernorm.weight", Layout::Same),
            ("ln2.bias", "post_attention_layernorm.bias", Layout::Same),
            ("attn.qkv.weight", "attention.query_key_value.weight", Layout::QkvWeight),
            ("attn.qkv.bias", "attention.query_key_value.bias", Layout::QkvBias),
            ("attn.proj.weight", "attention.dense.weight", Layout::Linear),
            ("attn.proj.bias", "attention.dense.bias", Layout::Same),
            ("mlp.fc.weight", "mlp.dense_h_to_4h.weight", Layout::Linear),
            ("mlp.fc.bias", "mlp.dense_h_to_4h.bias", Layout::Same),
            ("mlp.proj.weight", "mlp.dense_4h_to_h.weight", Layout::Linear),
            ("mlp.proj.bias", "mlp.dense_4h_to_h.bias", Layout::Same),
        ];
        out.extend(pairs.map(|(a, b, layout)| (format!("{e}{a}"), format!("{h}{b}"), layout)));
    }
    out.push((
        "ln_f.weight".into(),
        "gpt_neox.final_layer_norm.weight".into(),
        Layout::Same,
    ));
    out.push((
        "ln_f.bias".into(),
        "gpt_neox.final_layer_norm.bias".into(),
        Layout::Same,
    ));
    if !c.tie_embeddings {
        out.push(("lm_head.weight".into(), "embed_out.weight".into(), Layout::Same));
    }
    out
}

fn transpose(d: &NamedData) -> NamedData {
    let (rows, cols) = (d.shape[0], d.shape[1]);
    let mut values = vec![0.0; d.values.len()];
    for r in 0..rows {
        for c in 0..cols {
            values[c * rows + r] = d.values[r * cols + c];
        }
    }
    NamedData {
        shape: vec![cols, rows],
        values,
    }
}

/// Row `r` of ember's `[q | k | v]` (part, head, i) is row `h·3·d_head + part·d_head + i` of
/// GPT-NeoX's: `(ember row, GPT-NeoX row)` for every row.
fn qkv_rows(heads: usize, d_head: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..3).flat_map(move |part| {
        (0..heads).flat_map(move |h| {
            (0..d_head).map(move |i| {
                (
                    part * heads * d_head + h * d_head + i,
                    h * 3 * d_head + part * d_head + i,
                )
            })
        })
    })
}

/// Moves the rows of a `[rows, width]` matrix (a bias: width 1) from ember's order to GPT-NeoX's
/// (`to_hf`) or back.
fn regroup(values: &[f32], width: usize, heads: usize, d_head: usize, to_hf: bool) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (ember, hf) in qkv_rows(heads, d_head) {
        let (from, to) = if to_hf { (ember, hf) } else { (hf, ember) };
        out[to * width..(to + 1) * width].copy_from_slice(&values[from * width..(from + 1) * width]);
    }
    out
}

/// ember's parameters (Burn's layout) as GPT-NeoX's, by name.
pub fn to_hf_weights(c: &GptConfig, weights: &BTreeMap<String, NamedData>) -> BTreeMap<String, NamedData> {
    let (heads, d_head) = (c.n_head, c.d_head());
    names(c)
        .into_iter()
        .map(|(ember, hf, layout)| {
            let d = &weights[&ember];
            let out = match layout {
                Layout::Same => d.clone(),
                Layout::Linear => transpose(d),
                Layout::QkvWeight => {
                    let t = transpose(d); // [3·d_model, d_model], rows [q | k | v]
                    NamedData {
                        values: regroup(&t.values, t.shape[1], heads, d_head, true),
                        shape: t.shape,
                    }
                }
                Layout::QkvBias => NamedData {
                    values: regroup(&d.values, 1, heads, d_head, true),
                    shape: d.shape.clone(),
                },
            };
            (hf, out)
        })
        .collect()
}

/// GPT-NeoX's parameters as ember's (Burn's layout), checking that every one `c` needs is
/// there with its shape and that none is left over; `source` names the files in errors.
pub fn from_hf_weights(
    c: &GptConfig,
    mut hf: BTreeMap<String, NamedData>,
    source: &Path,
) -> Result<BTreeMap<String, NamedData>, TrainError> {
    let (heads, d_head) = (c.n_head, c.d_head());
    // Some checkpoints name the head lm_head; a tied model may carry a copy of the embedding.
    if let Some(head) = hf.remove("lm_head.weight") {
        hf.entry("embed_out.weight".into()).or_insert(head);
    }
    if c.tie_embeddings {
        hf.remove("embed_out.weight");
    }
    let expected = to_hf_shapes(c);
    let mut problems = Vec::new();
    for (name, shape) in &expected {
        match hf.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(d) if &d.shape != shape => problems.push(format!(
                "{name} has shape {:?} where the config gives {shape:?}",
                d.shape
            )),
            _ => {}
        }
    }
    // Buffers some checkpoints carry (rotary tables, masks) are not parameters.
    let extra: Vec<&String> = hf
        .keys()
        .filter(|k| {
            !expected.contains_key(*k)
                && !k.ends_with("rotary_emb.inv_freq")
                && !k.ends_with(".attention.bias")
                && !k.ends_with(".attention.masked_bias")
        })
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "{} is not a parameter of the configured model",
            extra.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(bad(
            source,
            format!(
                "its tensors do not match config.json ({} problem(s): {})",
                problems.len(),
                problems.into_iter().take(6).collect::<Vec<_>>().join("; ")
            ),
        ));
    }
    Ok(names(c)
        .into_iter()
        .map(|(ember, hf_name, layout)| {
            let d = hf.remove(&hf_name).expect("checked above");
            let out = match layout {
                Layout::Same => d,
                Layout::Linear => transpose(&d),
                Layout::QkvWeight => {
                    let width = d.shape[1];
                    transpose(&NamedData {
                        values: regroup(&d.values, width, heads, d_head, false),
                        shape: d.shape,
                    })
                }
                Layout::QkvBias => NamedData {
                    values: regroup(&d.values, 1, heads, d_head, false),
                    shape: d.shape,
                },
            };
            (ember, out)
        })
        .collect())
}

/// The GPT-NeoX shape of every parameter of `c`.
fn to_hf_shapes(c: &GptConfig) -> BTreeMap<String, Vec<usize>> {
    let (d, f, v) = (c.d_model, c.ff_width(), c.vocab_size);
    let shape = |ember: &str| match ember {
        "wte.weight" | "lm_head.weight" => vec![v, d],
        n if n.ends_with("attn.qkv.weight") => vec![3 * d, d],
        n if n.ends_with("attn.qkv.bias") => vec![3 * d],
        n if n.ends_with("attn.proj.weight") => vec![d, d],
        n if n.ends_with("mlp.fc.weight") => vec![f, d],
        n if n.ends_with("mlp.fc.bias") => vec![f],
        n if n.ends_with("mlp.proj.weight") => vec![d, f],
        _ => vec![d], // the other biases and the LayerNorms
    };
    names(c).into_iter().map(|(ember, hf, _)| (hf, shape(&ember))).collect()
}

/// The tensors of a safetensors file, any float type read as f32.
fn read_tensors(path: &Path, into: &mut BTreeMap<String, NamedData>) -> Result<(), TrainError> {
    let bytes = read_regular(path, limit::WEIGHTS).map_err(TrainError::io("reading", path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(bad(
                    path,
                    format!("tensor {name} is {other:?}; ember reads F32, F16 and BF16"),
                ));
            }
        };
        into.insert(
            name,
            NamedData {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qkv_rows_regroup_per_head_and_back() {
        // 2 heads of 2: ember rows q0 q0 q1 q1 k0 k0 k1 k1 v0 v0 v1 v1 → GPT-NeoX
        // q0 q0 k0 k0 v0 v0 q1 q1 k1 k1 v1 v1.
        let ember: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let hf = regroup(&ember, 1, 2, 2, true);
        assert_eq!(hf, vec![0.0, 1.0, 4.0, 5.0, 8.0, 9.0, 2.0, 3.0, 6.0, 7.0, 10.0, 11.0]);
        assert_eq!(regroup(&hf, 1, 2, 2, false), ember);
    }

    #[test]
    fn weights_round_trip_through_the_hf_names_bit_for_bit() {
        let c = GptConfig {
            vocab_size: 13,
            tie_embeddings: false,
            d_ff: Some(40),
            ..GptConfig::nano()
        };
        let model = c.init(3, &burn::tensor::Device::flex()).unwrap();
        let weights = crate::params::read_params(&model);
        let hf = to_hf_weights(&c, &weights);
        assert_eq!(
            hf["gpt_neox.layers.1.attention.query_key_value.weight"].shape,
            vec![96, 32]
        );
        assert_eq!(hf["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"].shape, vec![40, 32]);
        assert!(hf.contains_key("embed_out.weight"));
        let back = from_hf_weights(&c, hf, Path::new("x")).unwrap();
        assert_eq!(back, weights);
    }

    #[test]
    fn what_gpt_neox_cannot_express_is_named() {
        let base = GptConfig {
            vocab_size: 10,
            ..GptConfig::nano()
        };
        let msg = check_exportable(&GptConfig {
            n_kv_head: Some(1),
            ..base.clone()
        })
        .unwrap_err();
        assert!(
            msg.starts_with("model.n_kv_head = 1 (grouped-query attention) has no GPT-NeoX equivalent"),
            "{msg}"
        );
        let msg = check_exportable(&GptConfig {
            attention: Attention::Linear,
            ..base.clone()
        })
        .unwrap_err();
        assert!(msg.starts_with("model.attention = \"linear\""), "{msg}");
        check_exportable(&base).unwrap();
        let v = json!({ "architectures": ["LlamaForCausalLM"], "model_type": "llama" });
        let msg = config_from_hf(&v, Path::new("c.json")).unwrap_err().to_string();
        assert!(
            msg.contains("the architecture is LlamaForCausalLM; ember imports GPTNeoXForCausalLM"),
            "{msg}"
        );
        let mut v = hf_config(&base);
        v["hidden_act"] = json!("relu");
        let msg = config_from_hf(&v, Path::new("c.json")).unwrap_err().to_string();
        assert!(msg.contains("hidden_act \"relu\" is not supported"), "{msg}");
        // An exported config reads back as the same model.
        assert_eq!(config_from_hf(&hf_config(&base), Path::new("c.json")).unwrap(), base);
    }
}
