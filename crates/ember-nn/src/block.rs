//! One pre-norm transformer block:
//!
//! ```text
//! x = x + dropout(attn(ln1(x)))
//! x = x + dropout(mlp(ln2(x)))
//! ```
//!
//! Each sub-layer reads a normalised copy of the residual stream and adds its output back, so
//! the stream itself is never normalised in place and gradients flow straight through the sums.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use crate::attention::{CausalSelfAttention, CausalSelfAttentionConfig, KvCache};
use crate::gelu::Gelu;
use crate::init::InitRng;
use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::mlp::{Mlp, MlpConfig};

/// Configuration of a [`Block`].
#[derive(Config, Debug)]
pub struct BlockConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Longest sequence (the model's block size).
    pub max_seq: usize,
    /// Dropout on attention weights and on both residual branches (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub ln_eps: f64,
    /// Feed-forward activation.
    #[config(default = "Gelu::Erf")]
    pub gelu: Gelu,
    /// Init std of the weights that read from the stream.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init std of the two projections that write to the stream.
    #[config(default = 0.02)]
    pub proj_init_std: f64,
}

/// A pre-norm transformer block.
#[derive(Module, Debug)]
pub struct Block {
    /// Normalises the attention input.
    pub ln1: LayerNorm,
    /// Causal self-attention.
    pub attn: CausalSelfAttention,
    /// Normalises the feed-forward input.
    pub ln2: LayerNorm,
    /// Feed-forward network.
    pub mlp: Mlp,
    /// Dropout on each branch's output before it joins the residual stream.
    pub resid_dropout: Dropout,
}

impl BlockConfig {
    /// Creates the block.
    pub fn init(&self, rng: &mut InitRng, device: &Device) -> Block {
        Block {
            ln1: LayerNormConfig::new(self.d_model).with_eps(self.ln_eps).init(device),
            attn: CausalSelfAttentionConfig::new(self.d_model, self.n_heads, self.max_seq)
                .with_rope_theta(self.rope_theta)
                .with_dropout(self.dropout)
                .with_init_std(self.init_std)
                .with_proj_init_std(self.proj_init_std)
                .init(rng, device),
            ln2: LayerNormConfig::new(self.d_model).with_eps(self.ln_eps).init(device),
            mlp: MlpConfig::new(self.d_model, 4 * self.d_model)
                .with_gelu(self.gelu)
                .with_init_std(self.init_std)
                .with_proj_init_std(self.proj_init_std)
                .init(rng, device),
            resid_dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl Block {
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, cache: Option<&mut KvCache>) -> Tensor<3> {
        // Each branch's output comes first in its sum: a fresh buffer that nothing else holds,
        // which the addition can overwrite, where `x + branch` would copy `x` first.
        let h = self
            .resid_dropout
            .forward(self.attn.forward(self.ln1.forward(x.clone()), cache));
        let x = h + x;
        let h = self
            .resid_dropout
            .forward(self.mlp.forward(self.ln2.forward(x.clone())));
        h + x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init;
    use crate::test_util::{assert_close, device, values};
    use burn::module::Param;

    #[test]
    fn zero_output_projections_make_the_block_the_identity() {
        let device = device();
        let mut block = BlockConfig::new(8, 2, 4).init(&mut init::seeded(0), &device);
        block.attn.proj.weight = Param::from_tensor(Tensor::zeros([8, 8], &device));
        block.mlp.proj.weight = Param::from_tensor(Tensor::zeros([32, 8], &device));
        let x = Tensor::<3>::from_data(
            burn::tensor::TensorData::new(init::normal_vec(&mut init::seeded(1), 32, 1.0), [1, 4, 8]),
            &device,
        );
        assert_close(&values(&block.forward(x.clone(), None)), &values(&x), 0.0);
    }
}
