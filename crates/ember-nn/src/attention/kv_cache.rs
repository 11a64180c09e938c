//! The keys and values one attention layer has already computed, for generation.
//!
//! Without a cache, producing token `n + 1` re-runs the model over all `n` previous tokens.
//! With one, each layer keeps the (already rotated) keys and the values of past positions, and a
//! step only computes the newest position's query, key and value.

use burn::tensor::Tensor;

/// Keys and values of the positions seen so far by one attention layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Shape `[batch, n_heads, past, d_head]`; `None` before the first step.
    keys: Option<Tensor<4>>,
    /// Shape `[batch, n_heads, past, d_head]`; `None` before the first step.
    values: Option<Tensor<4>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions held (`past`).
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Whether no position is held yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends this step's keys and values; returns those of every position so far.
    ///
    /// # Shapes
    /// - keys, values: `[batch, n_heads, seq, d_head]`
    /// - returns two `[batch, n_heads, past + seq, d_head]`
    pub fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let keys = match self.keys.take() {
            Some(past) => Tensor::cat(vec![past, keys], 2),
            None => keys,
        };
        let values = match self.values.take() {
            Some(past) => Tensor::cat(vec![past, values], 2),
            None => values,
        };
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        (keys, values)
    }
}
