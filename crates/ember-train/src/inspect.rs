//! Looking inside a trained model: every layer's and head's attention weights for a prompt,
//! summaries that make heads' specialisation visible, attention rollout across the layers, and
//! the next-token distribution after the prompt.
//!
//! The weights come from [`Gpt::forward_with_attention`]: the same attention code the model
//! trains with (the fused CPU kernel where it serves), not a second copy of the model.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_model::Gpt;
use ember_nn::{AttentionKind, AttentionMask};
use serde::Serialize;

/// What one head does on the prompt, averaged over its queries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeadStats {
    /// Mean entropy of a query's weights, in nats: 0 when every query looks at one key,
    /// `ln(t + 1)` at query `t` when it spreads evenly.
    pub entropy: f64,
    /// Mean distance back to the keys, `Σ_j w_ij · (i − j)`, in positions.
    pub distance: f64,
    /// Mean weight on the previous token (queries 1 and later).
    pub previous: f64,
    /// Mean weight on the first token (queries 1 and later): heads that park their attention
    /// there ("attention sinks") have a high share.
    pub first: f64,
    /// Mean weight of a query on itself.
    pub itself: f64,
}

/// What a layer attends with, for display.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerKind {
    /// Softmax over every earlier position.
    Causal,
    /// Softmax over the last `window` positions.
    SlidingWindow {
        /// Positions each query sees, itself included.
        window: usize,
    },
    /// Linear attention (its weights are implied, not computed in training).
    Linear,
}

/// The attention of a model on one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionSnapshot {
    /// Layers.
    pub n_layer: usize,
    /// Query heads per layer.
    pub n_head: usize,
    /// Key/value heads per layer (query head `h` reads key/value head `h / (n_head / n_kv_head)`).
    pub n_kv_head: usize,
    /// Positions of the prompt.
    pub seq: usize,
    /// What each layer attends with.
    pub layers: Vec<LayerKind>,
    /// `[layer][head]`, each `[seq · seq]` row-major: row `i` is query `i`'s weights over keys.
    pub weights: Vec<Vec<Vec<f32>>>,
    /// `[layer][head]`.
    pub stats: Vec<Vec<HeadStats>>,
    /// Attention rollout through layer `l` (Abnar & Zuidema, 2020), `[layer]` × `[seq · seq]`:
    /// the product of the layers' head-averaged weights, each mixed half and half with the
    /// identity for the residual stream. A heuristic of how much each input position has
    /// flowed into each position by that layer, not a measurement.
    pub rollout: Vec<Vec<f32>>,
    /// Next-token logits after the last prompt position, `[vocab]`.
    pub logits: Vec<f32>,
}

/// Runs `model` (in evaluation mode, on `device`) over `ids` and gathers its attention.
pub fn snapshot(model: &Gpt, ids: &[u32], device: &Device) -> AttentionSnapshot {
    let seq = ids.len();
    assert!(seq > 0 && seq <= model.block_size, "1 to block_size prompt tokens");
    let tokens = ids.iter().map(|&t| t as i64).collect::<Vec<_>>();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(tokens, [1, seq]), device);
    let (logits, layers) = model.forward_with_attention(tokens);
    let logits: Vec<f32> = logits
        .narrow(1, seq - 1, 1)
        .to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 logits");
    let weights: Vec<Vec<Vec<f32>>> = layers
        .into_iter()
        .map(|w| {
            let [_, heads, _, _] = w.dims();
            let values: Vec<f32> = w.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32 weights");
            values.chunks(seq * seq).take(heads).map(<[f32]>::to_vec).collect()
        })
        .collect();
    let stats = weights
        .iter()
        .map(|layer| layer.iter().map(|w| head_stats(w, seq)).collect())
        .collect();
    let first = &model.blocks[0].attn;
    AttentionSnapshot {
        n_layer: model.blocks.len(),
        n_head: first.n_heads,
        n_kv_head: first.n_kv_heads,
        seq,
        layers: model
            .blocks
            .iter()
            .map(|b| match b.attn.kind {
                AttentionKind::Softmax(AttentionMask::Causal) => LayerKind::Causal,
                AttentionKind::Softmax(AttentionMask::SlidingWindow { window }) => LayerKind::SlidingWindow { window },
                AttentionKind::Linear => LayerKind::Linear,
            })
            .collect(),
        rollout: rollout(&weights, seq),
        weights,
        stats,
        logits,
    }
}

/// The summaries of one head's `[seq · seq]` weights.
pub fn head_stats(w: &[f32], seq: usize) -> HeadStats {
    let (mut entropy, mut distance, mut itself) = (0.0, 0.0, 0.0);
    let (mut previous, mut first) = (0.0, 0.0);
    for i in 0..seq {
        let row = &w[i * seq..(i + 1) * seq];
        for (j, &p) in row[..=i].iter().enumerate() {
            let p = p as f64;
            if p > 0.0 {
                entropy -= p * p.ln();
            }
            distance += p * (i - j) as f64;
        }
        itself += row[i] as f64;
        if i > 0 {
            previous += row[i - 1] as f64;
            first += row[0] as f64;
        }
    }
    let n = seq as f64;
    let later = (seq - 1).max(1) as f64;
    HeadStats {
        entropy: entropy / n,
        distance: distance / n,
        previous: if seq > 1 { previous / later } else { 0.0 },
        first: if seq > 1 { first / later } else { 0.0 },
        itself: itself / n,
    }
}

/// Attention rollout through each layer (see [`AttentionSnapshot::rollout`]).
pub fn rollout(weights: &[Vec<Vec<f32>>], seq: usize) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(weights.len());
    for layer in weights {
        // Â = ½·mean_h(W_h) + ½·I: rows still sum to 1.
        let heads = layer.len() as f32;
        let mut a = vec![0.0f32; seq * seq];
        for w in layer {
            for (x, &y) in a.iter_mut().zip(w) {
                *x += 0.5 * y / heads;
            }
        }
        for i in 0..seq {
            a[i * seq + i] += 0.5;
        }
        let next = match out.last() {
            None => a,
            Some(prev) => {
                // R_l = Â_l · R_{l−1}; both lower triangular.
                let mut r = vec![0.0f32; seq * seq];
                for i in 0..seq {
                    for k in 0..=i {
                        let aik = a[i * seq + k];
                        if aik == 0.0 {
                            continue;
                        }
                        let (row, prev_row) = (&mut r[i * seq..i * seq + k + 1], &prev[k * seq..k * seq + k + 1]);
                        for (x, &p) in row.iter_mut().zip(prev_row) {
                            *x += aik * p;
                        }
                    }
                }
                r
            }
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_heads_that_look_back_one_or_at_the_start() {
        let seq = 4;
        // Previous-token head (query 0 looks at itself).
        let mut prev = vec![0.0f32; 16];
        prev[0] = 1.0;
        for i in 1..seq {
            prev[i * seq + i - 1] = 1.0;
        }
        let s = head_stats(&prev, seq);
        assert_eq!((s.previous, s.entropy, s.distance), (1.0, 0.0, 0.75));
        assert_eq!((s.first, s.itself), (1.0 / 3.0, 0.25));
        // Uniform head: row i spreads over i + 1 keys.
        let mut uniform = vec![0.0f32; 16];
        for i in 0..seq {
            for j in 0..=i {
                uniform[i * seq + j] = 1.0 / (i + 1) as f32;
            }
        }
        let s = head_stats(&uniform, seq);
        let entropy = (1.0f64.ln() + 2f64.ln() + 3f64.ln() + 4f64.ln()) / 4.0;
        assert!((s.entropy - entropy).abs() < 1e-6);
        // mean distance: row i averages 0..=i back → i/2; mean of 0, .5, 1, 1.5
        assert!((s.distance - 0.75).abs() < 1e-6);
    }

    #[test]
    fn rollout_multiplies_the_mixed_layers() {
        let seq = 2;
        // One head per layer, both looking only at position 0.
        let w = vec![1.0, 0.0, 1.0, 0.0];
        let r = rollout(&[vec![w.clone()], vec![w]], seq);
        // Â = [[1, 0], [.5, .5]]; Â² = [[1, 0], [.75, .25]]
        assert_eq!(r[0], vec![1.0, 0.0, 0.5, 0.5]);
        assert_eq!(r[1], vec![1.0, 0.0, 0.75, 0.25]);
    }
}
