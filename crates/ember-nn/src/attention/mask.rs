//! Which keys each query may attend to.
//!
//! A mask is a rule on absolute positions, `allows(query_pos, key_pos)`. It is turned once per
//! model into an additive bias table of shape `[max_seq, max_seq]` (0 where attention is
//! allowed, −∞ where it is not). A forward pass slices the rows of its query positions and the
//! columns of its key positions, so the same table serves training (`past = 0`) and KV-cached
//! generation (`past > 0`, and with a sliding window only the keys the cache still holds).

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A rule deciding which key positions a query position may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        self.bias_block(0..max_seq, 0..max_seq, device)
    }

    /// The bias of queries at positions `queries` against keys at positions `keys`.
    ///
    /// # Shapes
    /// - returns `[queries.len(), keys.len()]`
    pub fn bias_block(
        &self,
        queries: std::ops::Range<usize>,
        keys: std::ops::Range<usize>,
        device: &Device,
    ) -> Tensor<2> {
        let shape = [queries.len(), keys.len()];
        let mut bias = Vec::with_capacity(shape[0] * shape[1]);
        for q in queries {
            for k in keys.clone() {
                bias.push(if self.allows(q, k) { 0.0 } else { f32::NEG_INFINITY });
            }
        }
        Tensor::from_data(TensorData::new(bias, shape), device)
    }
}

/// The part of a bias table for `seq` queries at positions `past..past + seq`, against the
/// keys at positions `first..past + seq` (`first` is 0 unless a cache has dropped old keys).
///
/// # Shapes
/// - table: `[max_seq, max_seq]` → `[seq, past + seq − first]`
pub fn bias_slice(table: &Tensor<2>, past: usize, seq: usize, first: usize) -> Tensor<2> {
    table.clone().narrow(0, past, seq).narrow(1, first, past + seq - first)
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
        assert_eq!(values(&bias_slice(&t, 2, 1, 0)), vec![0.0, 0.0, 0.0]);
        assert_eq!(bias_slice(&t, 1, 2, 0).dims(), [2, 3]);
        assert_eq!(values(&bias_slice(&t, 1, 2, 0)), vec![0.0, 0.0, NEG, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn slice_of_a_window_starts_at_the_first_key_held() {
        let t = AttentionMask::SlidingWindow { window: 2 }.bias_table(6, &device());
        // query at 5 against the keys 3..=5 a cache still holds: key 3 is out of the window
        assert_eq!(values(&bias_slice(&t, 5, 1, 3)), vec![NEG, 0.0, 0.0]);
        assert_eq!(
            values(&AttentionMask::SlidingWindow { window: 2 }.bias_block(5..6, 3..6, &device())),
            vec![NEG, 0.0, 0.0]
        );
    }
}
