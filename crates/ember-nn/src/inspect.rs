//! The forward passes that also return the attention weights, for looking inside a model
//! (`ember attention`): the same computation as `forward`, keeping the softmax rows (or linear
//! attention's implied weights) that it would otherwise discard.

use burn::tensor::Tensor;

use crate::attention::{AttentionKind, AttentionTables, CausalSelfAttention, fused, linear, sdpa};
use crate::block::{Block, residual};

impl CausalSelfAttention {
    /// [`forward`](Self::forward) over a whole sequence (no cache, no dropout), also returning
    /// the attention weights the layer used: the softmax rows, or linear attention's implied
    /// weights.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → (`[batch, seq, d_model]`, `[batch, n_heads, seq, seq]`)
    pub fn forward_with_weights(&self, x: Tensor<3>, tables: &AttentionTables) -> (Tensor<3>, Tensor<4>) {
        if let Some(out) = fused::self_attention_with_weights(self, &x, tables) {
            return out;
        }
        let [batch, seq, d_model] = x.dims();
        let (q, k, v) = self.split_heads(self.qkv.forward(x));
        let (q, k) = tables.rotate(q, k, 0);
        let (k, v) = (self.share(k), self.share(v));
        let (y, weights) = match self.kind {
            AttentionKind::Softmax(mask) => sdpa_with_weights(q, k, v, tables.bias(mask, 0, seq, 0)),
            AttentionKind::Linear => (linear::attention(q.clone(), k.clone(), v, None), linear::weights(q, k)),
        };
        let y = y.swap_dims(1, 2).reshape([batch, seq, d_model]);
        (self.proj.forward(y), weights)
    }
}

/// [`scaled_dot_product_attention`](sdpa::scaled_dot_product_attention) without dropout, also
/// returning the attention weights: the softmax rows that weigh the values.
///
/// # Shapes
/// - as `scaled_dot_product_attention`; weights `[batch, n_heads, seq, keys]`
pub fn sdpa_with_weights(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
    if let Some(out) = fused::attention_with_weights(&q, &k, &v, &bias) {
        return out;
    }
    let (scores, scale) = (q.clone().matmul(k.swap_dims(2, 3)), sdpa::scale(&q));
    let weights = sdpa::softmax_weights(scores, scale, bias);
    (weights.clone().matmul(v), weights)
}

impl Block {
    /// [`forward`](Self::forward) over a whole sequence, also returning the attention weights
    /// (see [`CausalSelfAttention::forward_with_weights`]).
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → (`[batch, seq, d_model]`, `[batch, n_heads, seq, seq]`)
    pub fn forward_with_weights(&self, x: Tensor<3>, tables: &AttentionTables) -> (Tensor<3>, Tensor<4>) {
        let (a, weights) = self.attn.forward_with_weights(self.ln1.forward(x.clone()), tables);
        let a = self.resid_dropout.forward(a);
        let mlp = |x| self.resid_dropout.forward(self.mlp.forward(self.ln2.forward(x)));
        if self.parallel_residual {
            return (residual(residual(x.clone(), a), mlp(x)), weights);
        }
        let x = residual(x, a);
        (residual(x.clone(), mlp(x)), weights)
    }
}
