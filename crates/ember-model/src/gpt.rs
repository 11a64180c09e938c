//! The decoder-only transformer.
//!
//! ```text
//! tokens ─ wte ─ block₀ ─ … ─ block_{n-1} ─ ln_f ─ wteᵀ ─ logits
//! ```
//!
//! Positions enter inside every attention layer (RoPE by default), so there is no learned
//! position table. The language-model head reuses the token embedding ("tied" weights) unless
//! `tie_embeddings = false` gives it its own `lm_head`. What every layer's attention shares (the
//! mask and RoPE tables) is built once here and passed down. Parameter names mirror the
//! reference implementation's (`wte.weight`, `blocks.0.attn.qkv.weight`, …). The cached forward
//! pass of generation is in `generate.rs`, the one that also returns the attention weights in
//! `inspect.rs`.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use ember_nn::{AttentionTables, Block, LayerNorm, LayerNormConfig, TokenEmbedding, TokenEmbeddingConfig, init};

use crate::config::{GptConfig, INIT_STD};
use crate::error::ModelError;

/// A GPT language model.
#[derive(Module, Debug)]
pub struct Gpt {
    /// Token embedding `[vocab, d_model]`, also the LM head unless `lm_head` is present.
    pub wte: TokenEmbedding,
    /// The transformer blocks, in order.
    pub blocks: Vec<Block>,
    /// Final LayerNorm before the LM head.
    pub ln_f: LayerNorm,
    /// An untied output head `[vocab, d_model]` (GPT-NeoX's `embed_out`), with
    /// `tie_embeddings = false`.
    pub lm_head: Option<TokenEmbedding>,
    /// The attention tables every block shares.
    pub tables: AttentionTables,
    /// Context length.
    pub block_size: usize,
}

impl GptConfig {
    /// Builds the model with GPT-2 initialisation drawn from `seed` (see [`ember_nn::init`]).
    pub fn init(&self, seed: u64, device: &Device) -> Result<Gpt, ModelError> {
        self.validate_complete()?;
        let mut rng = init::seeded(seed);
        let embedding = TokenEmbeddingConfig::new(self.vocab_size, self.d_model).with_init_std(INIT_STD);
        let wte = embedding.init(&mut rng, device);
        let blocks = (0..self.n_layer)
            .map(|l| self.block(l).init(&mut rng, device))
            .collect();
        let ln_f = LayerNormConfig::new(self.d_model).with_eps(self.ln_eps).init(device);
        // Drawn after every block, so that a tied model's weights stay as they always were.
        let lm_head = (!self.tie_embeddings).then(|| embedding.init(&mut rng, device));
        let tables = self.attention_tables().init(device); // shared by every block
        Ok(Gpt {
            wte,
            blocks,
            ln_f,
            lm_head,
            tables,
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
            x = block.forward(x, &self.tables, None);
        }
        self.head(self.ln_f.forward(x)) // [batch, seq, vocab]
    }

    /// The LM head: scores every token id against each final hidden state.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` → `[batch, seq, vocab]`
    pub(crate) fn head(&self, x: Tensor<3>) -> Tensor<3> {
        self.lm_head.as_ref().unwrap_or(&self.wte).logits(x)
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
    fn in_one_windowed_layer_a_token_outside_the_window_changes_no_logit() {
        // One layer, window 3: the logits at position 5 depend on positions 3, 4 and 5 only.
        let model = GptConfig {
            vocab_size: 11,
            block_size: 8,
            n_layer: 1,
            attention: crate::config::Attention::SlidingWindow,
            window: Some(3),
            ..GptConfig::nano()
        }
        .init(1, &device())
        .unwrap();
        let base = [1i64, 2, 3, 4, 5, 6];
        let row = |tokens: &[i64]| logits(&model, tokens)[5 * 11..6 * 11].to_vec();
        for (pos, should_change) in [(0, false), (1, false), (2, false), (3, true), (4, true)] {
            let mut changed = base;
            changed[pos] = 10;
            assert_eq!(row(&changed) != row(&base), should_change, "changing position {pos}");
        }
    }

    #[test]
    fn an_untied_head_is_its_own_parameter_and_a_tied_model_is_unchanged() {
        let tied = tiny();
        assert!(tied.lm_head.is_none());
        let untied = GptConfig {
            vocab_size: 11,
            block_size: 8,
            tie_embeddings: false,
            ..GptConfig::nano()
        }
        .init(1, &device())
        .unwrap();
        // The head is drawn after everything else: the shared weights are the tied model's.
        assert_eq!(
            untied.wte.weight.val().to_data().try_to_vec::<f32>().unwrap(),
            tied.wte.weight.val().to_data().try_to_vec::<f32>().unwrap()
        );
        let head = untied.lm_head.as_ref().expect("a head");
        assert_eq!(head.weight.dims(), [11, 32]);
        assert_ne!(logits(&untied, &[1, 2, 3]), logits(&tied, &[1, 2, 3]));
    }

    #[test]
    fn attention_weights_come_with_the_same_logits() {
        for config in crate::generate::tests::variants(8) {
            let model = config.init(3, &device()).unwrap();
            let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 4, 2, 8, 5], [1, 5]), &device());
            let (logits, weights) = model.forward_with_attention(tokens.clone());
            assert_eq!(weights.len(), config.n_layer);
            assert_eq!(weights[0].dims(), [1, config.n_head, 5, 5]);
            let plain = model.forward(tokens).to_data().try_to_vec::<f32>().unwrap();
            let with = logits.to_data().try_to_vec::<f32>().unwrap();
            for (a, b) in plain.iter().zip(&with) {
                assert!((a - b).abs() < 1e-5, "{config:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn init_rejects_an_unknown_vocabulary() {
        assert!(GptConfig::nano().init(0, &device()).is_err());
    }
}
