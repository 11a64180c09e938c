//! Which keys each query may attend to.
//!
//! A mask is a rule on absolute positions, `allows(query_pos, key_pos)`. It is turned once, at
//! `init`, into an additive bias table of shape `[max_seq, max_seq]` (0 where attention is
//! allowed, −∞ where it is not). A forward pass slices the rows of its query positions and the
//! columns of its key positions, so the same table serves training (`past = 0`) and KV-cached
//! generation (`past > 0`). A new masking scheme is a new variant here; nothing else changes.

use burn::tensor::{Device, Tensor, TensorData};

/// A rule deciding which key positions a query position may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionMask {
    /// Each position sees itself and every earlier position.
    Causal,
    /// Each position sees itself and the `window − 1` positions before it.
    SlidingWindow {
        /// Number of positions visible to each query, itself included (≥ 1).
        window: usize,
    },
}

impl AttentionMask {
    /// Whether a query at `query_pos` may attend to the key at `key_pos`.
    pub fn allows(&self, query_pos: usize, key_pos: usize) -> bool {
        match *self {
            AttentionMask::Causal => key_pos <= query_pos,
            AttentionMask::SlidingWindow { window } => key_pos <= query_pos && query_pos - key_pos < window,
        }
    }

    /// The additive bias table: `0.0` where [`allows`](Self::allows), `−∞` elsewhere.
    ///
    /// # Shapes
    /// - returns `[max_seq, max_seq]`, indexed `[query_pos, key_pos]`
    pub fn bias_table(&self, max_seq: usize, device: &Device) -> Tensor<2> {
        let mut bias = Vec::with_capacity(max_seq * max_seq);
        for q in 0..max_seq {
            for k in 0..max_seq {
                bias.push(if self.allows(q, k) { 0.0 } else { f32::NEG_INFINITY });
            }
        }
        Tensor::from_data(TensorData::new(bias, [max_seq, max_seq]), device)
    }
}

/// The part of a bias table for `seq` queries starting at position `past`, against all
/// `past + seq` keys.
///
/// # Shapes
/// - table: `[max_seq, max_seq]` → `[seq, past + seq]`
pub fn bias_slice(table: &Tensor<2>, past: usize, seq: usize) -> Tensor<2> {
    table.clone().narrow(0, past, seq).narrow(1, 0, past + seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, values};

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn causal_table_is_lower_triangular() {
        let t = AttentionMask::Causal.bias_table(3, &device());
        assert_eq!(values(&t), vec![0.0, NEG, NEG, 0.0, 0.0, NEG, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn sliding_window_hides_distant_keys() {
        let t = AttentionMask::SlidingWindow { window: 2 }.bias_table(3, &device());
        assert_eq!(values(&t), vec![0.0, NEG, NEG, 0.0, 0.0, NEG, NEG, 0.0, 0.0]);
    }

    #[test]
    fn slice_for_a_cached_step_is_the_query_row() {
        let t = AttentionMask::Causal.bias_table(4, &device());
        // one new query at position 2 against keys 0..=2
        assert_eq!(values(&bias_slice(&t, 2, 1)), vec![0.0, 0.0, 0.0]);
        assert_eq!(bias_slice(&t, 1, 2).dims(), [2, 3]);
        assert_eq!(values(&bias_slice(&t, 1, 2)), vec![0.0, 0.0, NEG, 0.0, 0.0, 0.0]);
    }
}
