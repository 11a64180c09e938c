//! What every attention layer of a model shares, built once per model and passed down to each
//! layer (as candle's llama builds its `Cache` once): RoPE's cos/sin tables, the mask tables,
//! ALiBi's slopes.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::mask::{self, AttentionMask};
use crate::alibi;
use crate::position::Position;
use crate::rope::{RotaryEncoding, RotaryEncodingConfig};

/// Configuration of [`AttentionTables`].
#[derive(Config, Debug)]
pub struct AttentionTablesConfig {
    /// Longest sequence (the model's block size).
    pub max_seq: usize,
    /// Query heads per layer.
    pub n_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// How positions enter attention.
    #[config(default = "Position::Rope")]
    pub position: Position,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Coordinates of each head that RoPE rotates (0: all).
    #[config(default = 0)]
    pub rot_dims: usize,
    /// Whether some layer attends over the whole causal context with a softmax.
    #[config(default = true)]
    pub full: bool,
    /// The window of the layers that have a sliding window, if any.
    #[config(default = "None")]
    pub window: Option<usize>,
}

/// The tables, on one device. Holds no learned parameters.
#[derive(Module, Debug)]
pub struct AttentionTables {
    /// RoPE's cos/sin tables `[max_seq, rot_dims]`, with [`Position::Rope`].
    pub rope: Option<RotaryEncoding>,
    /// ALiBi's slopes `[n_heads]`, with [`Position::Alibi`].
    pub alibi: Option<Tensor<1>>,
    /// The causal mask's bias `[max_seq, max_seq]`.
    pub causal: Option<Tensor<2>>,
    /// The sliding window's bias `[max_seq, max_seq]`.
    pub windowed: Option<Tensor<2>>,
    /// The sliding window's bias for chunks of `window` queries against their own and the
    /// previous chunk's keys (see [`super::window`]): `[2, window, 2·window]`, the first chunk's
    /// (which has no previous chunk) and every other chunk's.
    pub band: Option<Tensor<3>>,
}

impl AttentionTablesConfig {
    /// Computes the tables.
    pub fn init(&self, device: &Device) -> AttentionTables {
        let n = self.max_seq;
        let window = self.window.map(|w| AttentionMask::SlidingWindow { window: w });
        AttentionTables {
            rope: (self.position == Position::Rope).then(|| {
                RotaryEncodingConfig::new(n, self.d_head)
                    .with_theta(self.rope_theta)
                    .with_rot_dims(self.rot_dims)
                    .init(device)
            }),
            alibi: (self.position == Position::Alibi).then(|| alibi::slope_tensor(self.n_heads, device)),
            causal: self.full.then(|| AttentionMask::Causal.bias_table(n, device)),
            windowed: window.map(|m| m.bias_table(n, device)),
            band: self.window.map(|w| super::window::band(w, device)),
        }
    }
}

impl AttentionTables {
    /// Rotates queries and keys by their positions (with RoPE; unchanged otherwise); the first
    /// row sits at position `past`.
    ///
    /// # Shapes
    /// - q: `[batch, n_heads, seq, d_head]`, k: `[batch, n_kv_heads, seq, d_head]` → same
    pub fn rotate(&self, q: Tensor<4>, k: Tensor<4>, past: usize) -> (Tensor<4>, Tensor<4>) {
        match &self.rope {
            Some(rope) => (rope.apply(q, past), rope.apply(k, past)),
            None => (q, k),
        }
    }

    /// The additive bias of `seq` queries at positions `past..` against the keys at positions
    /// `first..past + seq`: the mask's, plus ALiBi's penalties with [`Position::Alibi`].
    ///
    /// # Shapes
    /// - returns `[1, seq, keys]` (shared by the heads), or `[n_heads, seq, keys]` with ALiBi
    pub fn bias(&self, mask: AttentionMask, past: usize, seq: usize, first: usize) -> Tensor<3> {
        let table = match mask {
            AttentionMask::Causal => self.causal.as_ref(),
            AttentionMask::SlidingWindow { .. } => self.windowed.as_ref(),
        };
        let table = table.expect("the model builds the tables of the masks its layers use");
        let bias = mask::bias_slice(table, past, seq, first).unsqueeze::<3>(); // [1, seq, keys]
        match &self.alibi {
            Some(slopes) => bias + alibi::bias(slopes, past..past + seq, first..past + seq),
            None => bias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, values};

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn band_tables_hide_what_the_window_hides() {
        let tables = AttentionTablesConfig::new(8, 1, 2).with_window(Some(2)).init(&device());
        let band = values(&tables.band.expect("band"));
        // Query i of a chunk (position w + i) against keys j = 0..4 (positions j): window 2.
        #[rustfmt::skip]
        let expected = [
            NEG, NEG, 0.0, NEG,     NEG, NEG, 0.0, 0.0,      // first chunk: nothing before
            NEG, 0.0, 0.0, NEG,     NEG, NEG, 0.0, 0.0,      // later chunks
        ];
        assert_eq!(band, expected);
    }

    #[test]
    fn alibi_bias_adds_penalties_to_the_mask() {
        let tables = AttentionTablesConfig::new(4, 2, 2)
            .with_position(Position::Alibi)
            .init(&device());
        assert!(tables.rope.is_none());
        let b = values(&tables.bias(AttentionMask::Causal, 1, 2, 0)); // queries 1, 2; keys 0..3
        // slopes of 2 heads: 1/16 and 1/256
        let (m0, m1) = (0.0625f32, 0.00390625f32);
        #[rustfmt::skip]
        let expected = [
            -m0, 0.0, NEG,   -2.0 * m0, -m0, 0.0,
            -m1, 0.0, NEG,   -2.0 * m1, -m1, 0.0,
        ];
        assert_eq!(b, expected);
    }
}
