//! Rotary position embedding (RoPE), rotate-half convention (GPT-NeoX, LLaMA).
//!
//! A head vector `x` of width `d_head` is split into halves `x₁ = x[..d_head/2]`,
//! `x₂ = x[d_head/2..]`. Pair `i` — the coordinates `(x₁[i], x₂[i])` — is rotated by the angle
//! `pos · θ^(-2i/d_head)`:
//!
//! ```text
//! rope(x, pos) = x ⊙ cos(pos·ω) + rotate_half(x) ⊙ sin(pos·ω),   rotate_half(x) = [-x₂, x₁]
//! ```
//!
//! where `ω` repeats the `d_head/2` frequencies twice. The dot product of a rotated query at
//! position `m` and a rotated key at position `n` then depends only on `m − n`: attention sees
//! relative positions. Burn's own `RotaryEncoding` rotates interleaved pairs `(x[2i], x[2i+1])`
//! (the GPT-J convention), which gives different numbers, so ember has its own.
//!
//! *Partial* rotary (GPT-NeoX's `rotary_pct`, Pythia rotates a quarter of each head) rotates
//! only the first `rot_dims` coordinates of a head, with the frequencies of a head of width
//! `rot_dims`, and passes the rest through unchanged.
//!
//! The cos/sin tables are computed once per model, for every position up to `max_seq`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// Configuration of a [`RotaryEncoding`].
#[derive(Config, Debug)]
pub struct RotaryEncodingConfig {
    /// Longest sequence (positions `0..max_seq`) the tables cover.
    pub max_seq: usize,
    /// Width of one attention head.
    pub d_head: usize,
    /// Leading coordinates of each head that are rotated (even, ≤ `d_head`); 0 means all.
    #[config(default = 0)]
    pub rot_dims: usize,
    /// Base of the geometric frequency progression.
    #[config(default = 10000.0)]
    pub theta: f64,
}

/// Precomputed rotation tables. Holds no learned parameters.
#[derive(Module, Debug)]
pub struct RotaryEncoding {
    /// `cos(pos · ω)`, shape `[max_seq, rot_dims]`.
    pub cos: Tensor<2>,
    /// `sin(pos · ω)`, shape `[max_seq, rot_dims]`.
    pub sin: Tensor<2>,
    /// Width of a head (`rot_dims` of it rotate).
    pub d_head: usize,
}

impl RotaryEncodingConfig {
    /// Computes the tables (in f64 on the host, stored as f32). Panics if the rotated width is
    /// odd, zero or wider than the head; the model config reports that to users first.
    pub fn init(&self, device: &Device) -> RotaryEncoding {
        let max_seq = self.max_seq;
        let rot = if self.rot_dims == 0 { self.d_head } else { self.rot_dims };
        assert!(
            rot > 0 && rot % 2 == 0 && rot <= self.d_head,
            "RoPE rotates an even number of a head's {} coordinates, got {rot}",
            self.d_head
        );
        let half = rot / 2;
        let mut cos = Vec::with_capacity(max_seq * rot);
        let mut sin = Vec::with_capacity(max_seq * rot);
        for pos in 0..max_seq {
            for j in 0..rot {
                let i = j % half; // both halves share the frequencies
                let freq = self.theta.powf(-2.0 * i as f64 / rot as f64);
                let angle = pos as f64 * freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RotaryEncoding {
            cos: Tensor::from_data(TensorData::new(cos, [max_seq, rot]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_seq, rot]), device),
            d_head: self.d_head,
        }
    }
}

impl RotaryEncoding {
    /// Rotates each head vector by its position; the first row of `x` sits at position `offset`
    /// (the number of positions already in a KV cache, 0 without one).
    ///
    /// # Shapes
    /// - x: `[batch, n_heads, seq, d_head]` → `[batch, n_heads, seq, d_head]`
    ///
    /// Panics if `offset + seq` exceeds `max_seq`.
    pub fn apply(&self, x: Tensor<4>, offset: usize) -> Tensor<4> {
        let [_, _, seq, d_head] = x.dims();
        let (cos, sin) = self.tables(offset, seq); // [seq, rot] each
        let rot = cos.dims()[1];
        if rot < d_head {
            // Partial rotary: rotate the leading coordinates, pass the others through.
            let passed = x.clone().narrow(3, rot, d_head - rot);
            return Tensor::cat(vec![rotate(x.narrow(3, 0, rot), cos, sin), passed], 3);
        }
        rotate(x, cos, sin)
    }

    /// The rows of the cos and sin tables for positions `offset..offset + seq`.
    ///
    /// Panics if `offset + seq` exceeds `max_seq`.
    ///
    /// # Shapes
    /// - returns `([seq, rot_dims], [seq, rot_dims])`
    pub fn tables(&self, offset: usize, seq: usize) -> (Tensor<2>, Tensor<2>) {
        let [max_seq, _] = self.cos.dims();
        assert!(
            offset + seq <= max_seq,
            "position {} is beyond the context of {max_seq}",
            offset + seq - 1
        );
        (
            self.cos.clone().narrow(0, offset, seq),
            self.sin.clone().narrow(0, offset, seq),
        )
    }
}

/// `x ⊙ cos + rotate_half(x) ⊙ sin`, the tables broadcast over batch and heads.
///
/// # Shapes
/// - x: `[batch, n_heads, seq, rot]`, cos and sin: `[seq, rot]` → `[batch, n_heads, seq, rot]`
fn rotate(x: Tensor<4>, cos: Tensor<2>, sin: Tensor<2>) -> Tensor<4> {
    // The tables are f32; under mixed precision they follow the activations' type.
    let dtype = x.dtype();
    let cos = cos.cast(dtype).unsqueeze::<4>(); // [1, 1, seq, rot]
    let sin = sin.cast(dtype).unsqueeze::<4>(); // [1, 1, seq, rot]
    x.clone() * cos + rotate_half(x) * sin
}

/// `[x₁, x₂] → [-x₂, x₁]` along the last axis.
///
/// # Shapes
/// - x: `[batch, n_heads, seq, d_head]` → same
fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let [_, _, _, d_head] = x.dims();
    let half = d_head / 2;
    let x1 = x.clone().narrow(3, 0, half); // [batch, n_heads, seq, d_head/2]
    let x2 = x.narrow(3, half, half); // [batch, n_heads, seq, d_head/2]
    Tensor::cat(vec![x2.neg(), x1], 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};

    fn x_at(values: &[f32], seq: usize, d_head: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), [1, 1, seq, d_head]), &device())
    }

    #[test]
    fn position_zero_is_the_identity() {
        let rope = RotaryEncodingConfig::new(4, 4).init(&device());
        let x = x_at(&[1.0, 2.0, 3.0, 4.0], 1, 4);
        assert_close(&values(&rope.apply(x, 0)), &[1.0, 2.0, 3.0, 4.0], 0.0);
    }

    #[test]
    fn rotates_pairs_by_hand_computed_angles() {
        // d_head = 4: frequencies θ^0 = 1 and θ^(-1/2) = 0.01. At position 1 the pairs
        // (x[0], x[2]) and (x[1], x[3]) turn by 1 rad and 0.01 rad.
        let rope = RotaryEncodingConfig::new(4, 4).init(&device());
        let x = x_at(&[1.0, 2.0, 3.0, 4.0], 1, 4);
        let (c1, s1) = (1f64.cos(), 1f64.sin());
        let (c2, s2) = (0.01f64.cos(), 0.01f64.sin());
        let expected = [
            1.0 * c1 - 3.0 * s1,
            2.0 * c2 - 4.0 * s2,
            3.0 * c1 + 1.0 * s1,
            4.0 * c2 + 2.0 * s2,
        ];
        let expected: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
        assert_close(&values(&rope.apply(x, 1)), &expected, 1e-6);
    }

    #[test]
    fn offset_equals_the_same_row_later_in_the_sequence() {
        let rope = RotaryEncodingConfig::new(8, 4).init(&device());
        let row = [0.3, -1.2, 0.7, 2.0];
        let mut seq = vec![0.0; 3 * 4];
        seq[8..12].copy_from_slice(&row);
        let full = values(&rope.apply(x_at(&seq, 3, 4), 0));
        let single = values(&rope.apply(x_at(&row, 1, 4), 2));
        assert_close(&single, &full[8..12], 1e-6);
    }

    #[test]
    fn scores_depend_only_on_relative_position() {
        let rope = RotaryEncodingConfig::new(16, 8).init(&device());
        let q = [0.1, 0.5, -0.3, 0.8, 1.0, -0.2, 0.4, 0.9];
        let k = [0.7, -0.6, 0.2, 0.1, -0.5, 0.3, 0.8, -0.4];
        let dot = |m: usize, n: usize| -> f32 {
            let q = values(&rope.apply(x_at(&q, 1, 8), m));
            let k = values(&rope.apply(x_at(&k, 1, 8), n));
            q.iter().zip(&k).map(|(a, b)| a * b).sum()
        };
        assert!((dot(5, 2) - dot(13, 10)).abs() < 1e-5);
        assert!((dot(3, 3) - dot(0, 0)).abs() < 1e-5);
    }

    #[test]
    fn partial_rotary_rotates_the_leading_coordinates_with_their_own_frequencies() {
        // d_head = 6, rot_dims = 2: one pair (x[0], x[1]) at frequency θ^0 = 1; x[2..] passes.
        let rope = RotaryEncodingConfig::new(4, 6).with_rot_dims(2).init(&device());
        assert_eq!(rope.cos.dims(), [4, 2], "two of the six coordinates rotate");
        let x = x_at(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1, 6);
        let (c, s) = (2f64.cos(), 2f64.sin()); // position 2
        let expected = [
            (1.0 * c - 2.0 * s) as f32,
            (2.0 * c + 1.0 * s) as f32,
            3.0,
            4.0,
            5.0,
            6.0,
        ];
        assert_close(&values(&rope.apply(x, 2)), &expected, 1e-6);
    }

    #[test]
    fn rotation_preserves_the_norm() {
        let rope = RotaryEncodingConfig::new(64, 8).init(&device());
        let x = [0.1, 0.5, -0.3, 0.8, 1.0, -0.2, 0.4, 0.9];
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
        let rotated = values(&rope.apply(x_at(&x, 1, 8), 63));
        assert!((norm(&rotated) - norm(&x)).abs() < 1e-5);
    }
}
