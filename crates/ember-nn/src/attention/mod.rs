//! Causal multi-head self-attention with rotary positions.
//!
//! ```text
//! q, k, v = split(x Wqkv + bqkv)                  one fused projection, [q | k | v]
//! q, k    = rope(q, pos), rope(k, pos)            per head
//! y_h     = softmax(q_h k_hᵀ / √d_head + mask) v_h
//! out     = concat_h(y_h) Wo + bo
//! ```
//!
//! The pieces live in their own files so that each can change alone: [`mask`] decides which
//! keys a query may see, [`sdpa`] computes the attention itself, and [`kv_cache`] keeps past
//! keys and values for generation. This module only wires them together.

pub mod kv_cache;
pub mod mask;
pub mod sdpa;

pub use kv_cache::KvCache;
pub use mask::AttentionMask;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use crate::init::{self, InitRng};
use crate::linear::Linear;
use crate::rope::{RotaryEncoding, RotaryEncodingConfig};

/// Configuration of a [`CausalSelfAttention`] layer.
#[derive(Config, Debug)]
pub struct CausalSelfAttentionConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of heads; must divide `d_model`, and `d_model / n_heads` must be even (RoPE).
    pub n_heads: usize,
    /// Longest sequence the layer attends over (the model's block size).
    pub max_seq: usize,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Dropout probability on the attention weights (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Init std of the q/k/v projection.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init std of the output projection (GPT-2 scales it by 1/√(2·n_layer)).
    #[config(default = 0.02)]
    pub proj_init_std: f64,
}

/// Causal multi-head self-attention.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Fused query/key/value projection, weight `[d_model, 3·d_model]`, bias `[3·d_model]`.
    /// Output columns are `[q | k | v]`, each `d_model` wide; within each, head `h` owns
    /// columns `h·d_head..(h+1)·d_head`.
    pub qkv: Linear,
    /// Output projection, weight `[d_model, d_model]`, bias `[d_model]`.
    pub proj: Linear,
    /// Rotary position tables.
    pub rope: RotaryEncoding,
    /// Additive mask bias, `[max_seq, max_seq]` (see [`AttentionMask`]).
    pub mask_bias: Tensor<2>,
    /// Dropout on the attention weights.
    pub attn_dropout: Dropout,
    /// Number of heads.
    pub n_heads: usize,
}

impl CausalSelfAttentionConfig {
    /// Creates the layer with a causal mask. Panics on inconsistent sizes; the model config
    /// reports those to users first.
    pub fn init(&self, rng: &mut InitRng, device: &Device) -> CausalSelfAttention {
        self.init_with_mask(AttentionMask::Causal, rng, device)
    }

    /// Creates the layer with the given mask.
    pub fn init_with_mask(&self, mask: AttentionMask, rng: &mut InitRng, device: &Device) -> CausalSelfAttention {
        let (d_model, n_heads) = (self.d_model, self.n_heads);
        assert!(
            n_heads > 0 && d_model % n_heads == 0,
            "n_heads ({n_heads}) must divide d_model ({d_model})"
        );
        CausalSelfAttention {
            qkv: init::linear(d_model, 3 * d_model, self.init_std, rng, device),
            proj: init::linear(d_model, d_model, self.proj_init_std, rng, device),
            rope: RotaryEncodingConfig::new(self.max_seq, d_model / n_heads)
                .with_theta(self.rope_theta)
                .init(device),
            mask_bias: mask.bias_table(self.max_seq, device),
            attn_dropout: DropoutConfig::new(self.dropout).init(),
            n_heads,
        }
    }
}

impl CausalSelfAttention {
    /// Attends every position to the positions its mask allows.
    ///
    /// With a `cache`, `x` holds only the new positions; their keys and values are appended
    /// to the cache and the queries attend over everything cached.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, cache: Option<&mut KvCache>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let n_heads = self.n_heads;
        let d_head = d_model / n_heads;
        let past = cache.as_ref().map_or(0, |c| c.len());

        let qkv = self.qkv.forward(x); // [batch, seq, 3·d_model]
        // With a cache, the fused kernel serves generation only: it passes no gradient.
        let kernel_serves = cache.is_none() || !qkv.device().is_autodiff();
        if kernel_serves && ember_kernels::fused(&qkv) && !sdpa::dropout_active(&self.attn_dropout, &qkv) {
            // Everything from here to `proj` in one fused CPU kernel (same numbers; see
            // `ember-kernels`, whose tests compare it with these lines).
            let (cos, sin) = self.rope.tables(past, seq); // [seq, d_head] each
            let bias = mask::bias_slice(&self.mask_bias, past, seq); // [seq, past + seq]
            let scale = 1.0 / (d_head as f64).sqrt();
            let y = match cache {
                None => ember_kernels::self_attention(qkv, cos, sin, bias, n_heads, scale),
                Some(cache) => {
                    // The kernel writes this step's keys and values into the cache's buffers.
                    let room = cache.take_room([batch, n_heads, seq, d_head], qkv.dtype(), &qkv.device());
                    let (y, keys, values) =
                        ember_kernels::cached_self_attention(qkv, cos, sin, room, bias, past, n_heads, scale);
                    cache.put_back(keys, values, seq);
                    y
                }
            }; // [batch, seq, d_model]
            return self.proj.forward(y);
        }
        let [q, k, v] = qkv.chunk(3, 2).try_into().expect("three chunks");
        let heads = |t: Tensor<3>| t.reshape([batch, seq, n_heads, d_head]).swap_dims(1, 2); // [batch, n_heads, seq, d_head]
        let (q, k, v) = (heads(q), heads(k), heads(v));

        let q = self.rope.apply(q, past);
        let k = self.rope.apply(k, past);
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v), // [batch, n_heads, past + seq, d_head]
            None => (k, v),
        };

        let bias = mask::bias_slice(&self.mask_bias, past, seq); // [seq, past + seq]
        let y = sdpa::scaled_dot_product_attention(q, k, v, bias, &self.attn_dropout); // [batch, n_heads, seq, d_head]
        let y = y.swap_dims(1, 2).reshape([batch, seq, d_model]); // heads side by side
        self.proj.forward(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};
    use burn::tensor::{Distribution, TensorData};

    fn layer(mask: AttentionMask) -> CausalSelfAttention {
        layer_on(mask, &device())
    }

    fn layer_on(mask: AttentionMask, device: &Device) -> CausalSelfAttention {
        CausalSelfAttentionConfig::new(8, 2, 6)
            .with_init_std(0.3)
            .with_proj_init_std(0.3)
            .init_with_mask(mask, &mut init::seeded(1), device)
    }

    fn input(seed: u64) -> Vec<f32> {
        init::normal_vec(&mut init::seeded(seed), 2 * 6 * 8, 1.0)
    }

    fn run(layer: &CausalSelfAttention, x: &[f32], seq: usize) -> Vec<f32> {
        let x = Tensor::<3>::from_data(TensorData::new(x.to_vec(), [2, seq, 8]), &device());
        values(&layer.forward(x, None))
    }

    #[test]
    fn later_tokens_do_not_change_earlier_outputs() {
        let layer = layer(AttentionMask::Causal);
        let x = input(2);
        let mut changed = x.clone();
        for v in &mut changed[4 * 8..5 * 8] {
            *v += 1.0; // position 4 of the first sequence
        }
        let (a, b) = (run(&layer, &x, 6), run(&layer, &changed, 6));
        assert_close(&b[..4 * 8], &a[..4 * 8], 0.0);
        assert!(a[4 * 8..5 * 8].iter().zip(&b[4 * 8..5 * 8]).any(|(p, q)| p != q));
    }

    #[test]
    fn sliding_window_forgets_positions_outside_it() {
        let layer = layer(AttentionMask::SlidingWindow { window: 2 });
        let x = input(3);
        let mut changed = x.clone();
        changed[0] += 1.0; // position 0
        let (a, b) = (run(&layer, &x, 6), run(&layer, &changed, 6));
        // position 1 still sees position 0; position 2 no longer does.
        assert!(a[8..16] != b[8..16]);
        assert_close(&b[16..48], &a[16..48], 0.0);
    }

    #[test]
    fn kv_cache_gives_the_same_outputs_as_the_full_sequence() {
        let x = input(4);
        let full = run(&layer(AttentionMask::Causal), &x, 6);
        // On flex the fused kernel runs the cached steps; under autodiff the composition does.
        for device in [device(), device().autodiff()] {
            let layer = layer_on(AttentionMask::Causal, &device);
            let x = Tensor::<3>::from_data(TensorData::new(x.clone(), [2, 6, 8]), &device);
            let mut cache = KvCache::new();
            let mut stepwise = vec![Vec::new(); 2];
            // a prompt of 3 positions, then one position at a time
            for (start, len) in [(0, 3), (3, 1), (4, 1), (5, 1)] {
                let out = layer.forward(x.clone().narrow(1, start, len), Some(&mut cache));
                for (b, rows) in stepwise.iter_mut().enumerate() {
                    rows.extend(values(&out.clone().narrow(0, b, 1)));
                }
            }
            assert_eq!(cache.len(), 6);
            assert_close(&stepwise.concat(), &full, 1e-5);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let device = device().autodiff();
        let layer = CausalSelfAttentionConfig::new(4, 2, 3)
            .with_init_std(0.5)
            .with_proj_init_std(0.5)
            .init(&mut init::seeded(5), &device);
        let x0 = Tensor::<3>::random([1, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let x_vals = values(&x0);
        // loss = Σ out ⊙ w for a fixed random w, so every output matters.
        let w = Tensor::<3>::random([1, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let loss = |x: Tensor<3>| (layer.forward(x, None) * w.clone()).sum();
        let x = x0.require_grad();
        let grads = loss(x.clone()).backward();
        let analytic = values(&x.grad(&grads).expect("gradient"));
        let eps = 1e-2;
        for i in 0..x_vals.len() {
            let shifted = |delta: f32| {
                let mut v = x_vals.clone();
                v[i] += delta;
                let x = Tensor::<3>::from_data(TensorData::new(v, [1, 3, 4]), &device);
                loss(x).into_scalar::<f32>()
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
            assert!(
                (numeric - analytic[i]).abs() < 2e-3,
                "x[{i}]: finite difference {numeric}, autodiff {}",
                analytic[i]
            );
        }
    }
}
