//! Grouped-query attention: `n_kv_heads` key/value heads, each shared by `n_heads / n_kv_heads`
//! consecutive query heads (one key/value head for all is multi-query attention). The
//! projection computes fewer keys and values, and a KV cache keeps fewer; attention itself runs
//! as before, on the shared heads.

use burn::tensor::Tensor;

use super::CausalSelfAttention;

impl CausalSelfAttention {
    /// Each key/value head serves `group = n_heads / n_kv_heads` consecutive query heads, so
    /// query head `h` reads key/value head `h / group`.
    ///
    /// # Shapes
    /// - t: `[batch, n_kv_heads, seq, d_head]` → `[batch, n_heads, seq, d_head]`
    pub(crate) fn share(&self, t: Tensor<4>) -> Tensor<4> {
        let group = self.n_heads / self.n_kv_heads;
        if group == 1 {
            return t;
        }
        let [batch, kv, seq, d] = t.dims();
        t.unsqueeze_dim::<5>(2) // [batch, n_kv_heads, 1, seq, d_head]
            .repeat_dim(2, group)
            .reshape([batch, kv * group, seq, d])
    }
}
