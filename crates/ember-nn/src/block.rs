//! One pre-norm transformer block:
//!
//! ```text
//! x = x + dropout(attn(ln1(x)))
//! x = x + dropout(mlp(ln2(x)))
//! ```
//!
//! Each sub-layer reads a normalised copy of the residual stream and adds its output back, so
//! the stream itself is never normalised in place and gradients flow straight through the sums.
//!
//! GPT-NeoX and Pythia run the two branches side by side instead, both reading the same
//! stream (`parallel_residual`): `x = x + attn(ln1(x)) + mlp(ln2(x))`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use crate::attention::{AttentionCache, AttentionTables, CausalSelfAttention, CausalSelfAttentionConfig};
use crate::init::InitRng;
use crate::layer_norm::{LayerNorm, LayerNormConfig};
use crate::mlp::{Mlp, MlpConfig};

/// Configuration of a [`Block`]: its two sub-layers' configurations and how they join the
/// stream.
#[derive(Config, Debug)]
pub struct BlockConfig {
    /// The attention layer.
    pub attn: CausalSelfAttentionConfig,
    /// The feed-forward network.
    pub mlp: MlpConfig,
    /// Both branches read the same stream: `x + attn(ln1(x)) + mlp(ln2(x))`.
    #[config(default = false)]
    pub parallel_residual: bool,
    /// Dropout on both residual branches (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub ln_eps: f64,
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
    /// Whether the branches run side by side.
    pub parallel_residual: bool,
}

impl BlockConfig {
    /// Creates the block.
    pub fn init(&self, rng: &mut InitRng, device: &Device) -> Block {
        let layer_norm = LayerNormConfig::new(self.attn.d_model).with_eps(self.ln_eps);
        Block {
            ln1: layer_norm.init(device),
            attn: self.attn.init(rng, device),
            ln2: layer_norm.init(device),
            mlp: self.mlp.init(rng, device),
            resid_dropout: DropoutConfig::new(self.dropout).init(),
            parallel_residual: self.parallel_residual,
        }
    }
}

impl Block {
    /// `tables` are the model's shared attention tables; with a `cache`, `x` holds only new
    /// positions (see [`CausalSelfAttention::forward`]).
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<3>, tables: &AttentionTables, cache: Option<&mut AttentionCache>) -> Tensor<3> {
        let attn = |x| {
            self.resid_dropout
                .forward(self.attn.forward(self.ln1.forward(x), tables, cache))
        };
        let mlp = |x| self.resid_dropout.forward(self.mlp.forward(self.ln2.forward(x)));
        if self.parallel_residual {
            let a = attn(x.clone());
            return residual(residual(x.clone(), a), mlp(x)); // x + attn(ln1(x)) + mlp(ln2(x))
        }
        let x = residual(x.clone(), attn(x)); // x + attn(ln1(x))
        residual(x.clone(), mlp(x)) // x + mlp(ln2(x))
    }
}

/// `stream + branch`. Written `branch + stream`: the branch's output is a fresh buffer that
/// nothing else holds, which the CPU backend then overwrites in place instead of copying the
/// stream first (the sum is the same).
pub(crate) fn residual(stream: Tensor<3>, branch: Tensor<3>) -> Tensor<3> {
    branch + stream
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionTablesConfig;
    use crate::init;
    use crate::test_util::{assert_close, device, values};
    use burn::module::Param;

    /// A block of width 8 with 2 heads, its weights drawn with std `std`.
    fn config(std: f64) -> BlockConfig {
        let attn = CausalSelfAttentionConfig::new(8, 2)
            .with_init_std(std)
            .with_proj_init_std(std);
        BlockConfig::new(attn, MlpConfig::new(8, 32).with_init_std(std).with_proj_init_std(std))
    }

    fn tables(device: &Device) -> AttentionTables {
        AttentionTablesConfig::new(4, 2, 4).init(device)
    }

    fn x(device: &Device) -> Tensor<3> {
        let v = init::normal_vec(&mut init::seeded(1), 32, 1.0);
        Tensor::<3>::from_data(burn::tensor::TensorData::new(v, [1, 4, 8]), device)
    }

    #[test]
    fn zero_output_projections_make_the_block_the_identity() {
        let device = device();
        for parallel in [false, true] {
            let mut block = config(0.02)
                .with_parallel_residual(parallel)
                .init(&mut init::seeded(0), &device);
            block.attn.proj.weight = Param::from_tensor(Tensor::zeros([8, 8], &device));
            block.mlp.proj.weight = Param::from_tensor(Tensor::zeros([32, 8], &device));
            let x = x(&device);
            assert_close(
                &values(&block.forward(x.clone(), &tables(&device), None)),
                &values(&x),
                0.0,
            );
        }
    }

    #[test]
    fn parallel_branches_both_read_the_block_input() {
        let device = device();
        let tables = tables(&device);
        let block = config(0.3)
            .with_parallel_residual(true)
            .init(&mut init::seeded(0), &device);
        let x = x(&device);
        let a = block.attn.forward(block.ln1.forward(x.clone()), &tables, None);
        let m = block.mlp.forward(block.ln2.forward(x.clone()));
        let expected = values(&(x.clone() + a + m));
        assert_close(&values(&block.forward(x.clone(), &tables, None)), &expected, 1e-6);
        let (y, weights) = block.forward_with_weights(x, &tables);
        assert_close(&values(&y), &expected, 1e-6);
        assert_eq!(weights.dims(), [1, 2, 4, 4]);
    }
}
