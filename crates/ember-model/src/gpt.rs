//! The decoder-only transformer.
//!
//! ```text
//! tokens ─ wte ─ block₀ ─ … ─ block_{n-1} ─ ln_f ─ wteᵀ ─ logits
//! ```
//!
//! Positions enter through RoPE inside every attention layer, so there is no learned position
//! table. The language-model head reuses the token embedding ("tied" weights). Parameter names
//! mirror the reference implementation's (`wte.weight`, `blocks.0.attn.qkv.weight`, …).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use ember_nn::{Block, BlockConfig, KvCache, LayerNorm, LayerNormConfig, TokenEmbedding, TokenEmbeddingConfig, init};

use crate::config::GptConfig;
use crate::error::ModelError;

/// A GPT language model.
#[derive(Module, Debug)]
pub struct Gpt {
    /// Token embedding `[vocab, d_model]`, also the LM head.
    pub wte: TokenEmbedding,
    /// The transformer blocks, in order.
    pub blocks: Vec<Block>,
    /// Final LayerNorm before the LM head.
    pub ln_f: LayerNorm,
    /// Context length.
    pub block_size: usize,
}

impl GptConfig {
    /// Builds the model with GPT-2 initialisation drawn from `seed` (see [`ember_nn::init`]).
    pub fn init(&self, seed: u64, device: &Device) -> Result<Gpt, ModelError> {
        self.validate_complete()?;
        let mut rng = init::seeded(seed);
        let init_std = 0.02;
        let proj_init_std = 0.02 / (2.0 * self.n_layer as f64).sqrt();
        let wte = TokenEmbeddingConfig::new(self.vocab_size, self.d_model)
            .with_init_std(init_std)
            .init(&mut rng, device);
        let block = BlockConfig::new(self.d_model, self.n_head, self.block_size)
            .with_dropout(self.dropout)
            .with_rope_theta(self.rope_theta)
            .with_ln_eps(self.ln_eps)
            .with_gelu(self.gelu)
            .with_init_std(init_std)
            .with_proj_init_std(proj_init_std);
        let blocks = (0..self.n_layer).map(|_| block.init(&mut rng, device)).collect();
        let ln_f = LayerNormConfig::new(self.d_model).with_eps(self.ln_eps).init(device);
        Ok(Gpt {
            wte,
            blocks,
            ln_f,
            block_size: self.block_size,
        })
    }
}

impl Gpt {
    /// Next-token logits at every position.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`, `seq ≤ block_size` → `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let mut x = self.wte.forward(tokens); // [batch, seq, d_model]
        for block in &self.blocks {
            x = block.forward(x, None);
        }
        self.wte.logits(self.ln_f.forward(x)) // [batch, seq, vocab]
    }

    /// Like [`forward`](Self::forward) for new positions only, reading and extending one KV
    /// cache per block. `caches` must hold `n_layer` caches, all of the same length.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`, `past + seq ≤ block_size` → `[batch, seq, vocab]`
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, caches: &mut [KvCache]) -> Tensor<3> {
        assert_eq!(caches.len(), self.blocks.len(), "one KV cache per block");
        let mut x = self.wte.forward(tokens);
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            x = block.forward(x, Some(cache));
        }
        self.wte.logits(self.ln_f.forward(x))
    }

    /// Fresh, empty KV caches, one per block.
    pub fn new_caches(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.blocks.len()]
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.wte.weight.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn device() -> Device {
        Device::flex()
    }

    fn tiny() -> Gpt {
        GptConfig {
            vocab_size: 11,
            block_size: 8,
            ..GptConfig::nano()
        }
        .init(1, &device())
        .unwrap()
    }

    fn logits(model: &Gpt, tokens: &[i64]) -> Vec<f32> {
        let t = Tensor::<2, Int>::from_data(TensorData::new(tokens.to_vec(), [1, tokens.len()]), &device());
        model.forward(t).to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn changing_a_later_token_leaves_earlier_logits_unchanged() {
        let model = tiny();
        let a = logits(&model, &[1, 2, 3, 4, 5, 6]);
        for t in 0..5 {
            let mut tokens = vec![1, 2, 3, 4, 5, 6];
            tokens[t + 1] = 10;
            let b = logits(&model, &tokens);
            let upto = (t + 1) * 11;
            assert_eq!(a[..upto], b[..upto], "position ≤ {t} changed");
            assert_ne!(
                a[upto..upto + 11],
                b[upto..upto + 11],
                "position {} did not change",
                t + 1
            );
        }
    }

    #[test]
    fn cached_forward_matches_the_full_forward() {
        let model = tiny();
        let tokens = [3i64, 1, 4, 1, 5, 9, 2];
        let full = logits(&model, &tokens);
        let mut caches = model.new_caches();
        let mut stepped = Vec::new();
        for (start, len) in [(0, 4), (4, 1), (5, 1), (6, 1)] {
            let t = Tensor::<2, Int>::from_data(
                TensorData::new(tokens[start..start + len].to_vec(), [1, len]),
                &device(),
            );
            stepped.extend(
                model
                    .forward_cached(t, &mut caches)
                    .to_data()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
        }
        for (i, (a, b)) in stepped.iter().zip(&full).enumerate() {
            assert!((a - b).abs() < 1e-5, "logit {i}: {a} vs {b}");
        }
    }

    #[test]
    fn the_same_seed_builds_the_same_model() {
        let a = logits(&tiny(), &[1, 2, 3]);
        let b = logits(&tiny(), &[1, 2, 3]);
        assert_eq!(a, b);
        let other = GptConfig {
            vocab_size: 11,
            block_size: 8,
            ..GptConfig::nano()
        }
        .init(2, &device())
        .unwrap();
        assert_ne!(logits(&other, &[1, 2, 3]), a);
    }

    #[test]
    fn init_rejects_an_unknown_vocabulary() {
        assert!(GptConfig::nano().init(0, &device()).is_err());
    }
}
