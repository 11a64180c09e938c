//! Parameters: ember's names and Burn's layout against GPT-NeoX's, and safetensors files of
//! any float type.

use std::collections::BTreeMap;
use std::path::Path;

use ember_data::files::{limit, read_regular};
use ember_model::GptConfig;
use safetensors::{Dtype, SafeTensors};

use super::config::bad;
use crate::error::TrainError;
use crate::params::NamedData;

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
pub(super) fn read_tensors(path: &Path, into: &mut BTreeMap<String, NamedData>) -> Result<(), TrainError> {
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
}
