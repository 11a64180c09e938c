//! Token embedding: a lookup table from token id to a `d_model`-wide vector.
//!
//! The same table, transposed, is the language-model head ("tied" embeddings): the logit of
//! token `v` at a position is the dot product of the final hidden state with row `v`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};

use crate::init::{self, InitRng};
use crate::linear::matmul;

/// Configuration of a [`TokenEmbedding`].
#[derive(Config, Debug)]
pub struct TokenEmbeddingConfig {
    /// Number of token ids.
    pub vocab: usize,
    /// Width of each embedding vector.
    pub d_model: usize,
    /// Standard deviation of the N(0, std²) initialisation.
    #[config(default = 0.02)]
    pub init_std: f64,
}

/// A `[vocab, d_model]` table of learned token vectors.
#[derive(Module, Debug)]
pub struct TokenEmbedding {
    /// Shape `[vocab, d_model]`, initialised N(0, 0.02²).
    pub weight: Param<Tensor<2>>,
}

impl TokenEmbeddingConfig {
    /// Creates the table. Panics if either dimension is zero (the model config validates this
    /// with a user-facing message first).
    pub fn init(&self, rng: &mut InitRng, device: &Device) -> TokenEmbedding {
        assert!(
            self.vocab > 0 && self.d_model > 0,
            "embedding dimensions must be positive"
        );
        TokenEmbedding {
            weight: init::normal([self.vocab, self.d_model], self.init_std, rng, device),
        }
    }
}

impl TokenEmbedding {
    /// Looks up each token's vector.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]` → `[batch, seq, d_model]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        burn::tensor::module::embedding(self.weight.val(), tokens)
    }

    /// The tied language-model head: scores every token id against each hidden state.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, vocab]`
    pub fn logits(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let [vocab, _] = self.weight.dims();
        let x = x.reshape([batch * seq, d_model]); // [batch·seq, d_model]
        let logits = matmul(x, self.weight.val().transpose()); // [batch·seq, vocab]
        logits.reshape([batch, seq, vocab])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};
    use burn::tensor::TensorData;

    fn table() -> TokenEmbedding {
        let device = device();
        let weight = Tensor::<2>::from_data([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], &device);
        TokenEmbedding {
            weight: Param::from_tensor(weight),
        }
    }

    #[test]
    fn forward_picks_rows_by_token_id() {
        let tokens = Tensor::<2, Int>::from_data(TensorData::from([[2, 0], [1, 1]]), &device());
        let out = table().forward(tokens);
        assert_eq!(out.dims(), [2, 2, 2]);
        assert_close(&values(&out), &[5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0], 0.0);
    }

    #[test]
    fn logits_are_dot_products_with_every_row() {
        let x = Tensor::<3>::from_data([[[1.0, -1.0]]], &device());
        let out = table().logits(x);
        assert_eq!(out.dims(), [1, 1, 3]);
        // [1,-1]·[1,2] = -1, ·[3,4] = -1, ·[5,6] = -1
        assert_close(&values(&out), &[-1.0, -1.0, -1.0], 1e-6);
        let x = Tensor::<3>::from_data([[[0.5, 1.0]]], &device());
        assert_close(&values(&table().logits(x)), &[2.5, 5.5, 8.5], 1e-6);
    }

    #[test]
    fn init_has_the_configured_shape() {
        let emb = TokenEmbeddingConfig::new(11, 8).init(&mut init::seeded(0), &device());
        assert_eq!(emb.weight.dims(), [11, 8]);
    }
}
