//! Helpers shared by the tests that compare ember with the PyTorch reference: the golden
//! model of `data/golden.json` (vocab 11, 2 layers, 2 heads, d_model 8, context 6, batch 2).
#![allow(dead_code)] // each test binary uses some of them

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_model::GptConfig;
use ember_train::params::NamedData;
use serde_json::Value;

pub fn golden() -> Value {
    serde_json::from_str(include_str!("../data/golden.json")).expect("golden.json parses")
}

pub fn flatten(v: &Value, out: &mut Vec<f32>, shape: &mut Vec<usize>, depth: usize) {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            }
            for item in items {
                flatten(item, out, shape, depth + 1);
            }
        }
        Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
        other => panic!("unexpected {other}"),
    }
}

/// A golden tensor in Burn's layout: PyTorch's Linear weights `[out, in]` are transposed to
/// Burn's `[in, out]`; the embedding and 1-D tensors are unchanged.
pub fn burn_layout(name: &str, v: &Value) -> NamedData {
    let (mut values, mut shape) = (Vec::new(), Vec::new());
    flatten(v, &mut values, &mut shape, 0);
    if shape.len() == 2 && name != "wte.weight" {
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = values[r * cols + c];
            }
        }
        values = t;
        shape = vec![cols, rows];
    }
    NamedData { shape, values }
}

pub fn named(section: &Value) -> BTreeMap<String, NamedData> {
    section
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), burn_layout(k, v)))
        .collect()
}

pub fn ids(v: &Value, device: &Device) -> Tensor<2, Int> {
    let rows: Vec<Vec<i64>> = serde_json::from_value(v.clone()).expect("ids");
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), device)
}

pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max |difference| {worst:e} exceeds {tol:e}");
}

/// The golden model's config (the reference's architecture: causal attention, RoPE).
pub fn golden_config(g: &Value) -> GptConfig {
    let c = &g["config"];
    GptConfig {
        vocab_size: c["vocab"].as_u64().unwrap() as usize,
        n_layer: c["n_layer"].as_u64().unwrap() as usize,
        n_head: c["n_head"].as_u64().unwrap() as usize,
        d_model: c["d_model"].as_u64().unwrap() as usize,
        block_size: c["block"].as_u64().unwrap() as usize,
        ..GptConfig::nano()
    }
}
