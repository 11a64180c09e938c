//! Autoregressive generation: feed the context, sample a token, append it, repeat.
//!
//! With the KV cache, each step runs the model over the newest token only. When the text
//! outgrows the context (`block_size`), the window jumps forward: the oldest tokens are dropped
//! so that the last `block_size / 2` remain, and the cache is rebuilt from them. Generation
//! without the cache recomputes the same window at every step, so both paths compute the same
//! function and greedy decoding gives identical tokens (a test asserts it).

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_nn::AttentionCache;

use crate::error::ModelError;
use crate::gpt::Gpt;
use crate::sampling::Sampler;

/// Options of one generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to produce after the prompt.
    pub max_new_tokens: usize,
    /// Reuse past keys and values (fast) rather than recomputing the window at each step.
    pub use_cache: bool,
}

/// Generates text from a model in inference mode.
pub struct Generator<'a> {
    model: &'a Gpt,
    device: Device,
}

impl<'a> Generator<'a> {
    /// A generator for `model`, whose tensors live on `device`.
    pub fn new(model: &'a Gpt, device: Device) -> Self {
        Self { model, device }
    }

    /// Continues `prompt` by `max_new_tokens` tokens, calling `on_token` with each new one as
    /// soon as it is chosen. Returns the new tokens. A prompt longer than the context keeps
    /// only its last `block_size` tokens.
    pub fn generate(
        &self,
        prompt: &[u32],
        options: GenerateOptions,
        sampler: &mut Sampler,
        mut on_token: impl FnMut(u32),
    ) -> Result<Vec<u32>, ModelError> {
        let vocab = self.model.vocab_size();
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::TokenOutOfRange { id, vocab });
        }
        assert!(!prompt.is_empty(), "generation needs at least one prompt token");
        let block = self.model.block_size;
        let mut tokens = prompt.to_vec();
        let mut start = tokens.len().saturating_sub(block);
        let mut caches: Vec<AttentionCache> = Vec::new();
        let mut cached_until = start; // tokens[start..cached_until] are in the caches
        let mut new_tokens = Vec::with_capacity(options.max_new_tokens);

        for _ in 0..options.max_new_tokens {
            let moved = self.next_start(tokens.len(), start);
            let logits = if options.use_cache {
                if moved != start || caches.is_empty() {
                    start = moved;
                    caches = self.model.new_caches();
                    cached_until = start;
                }
                let fresh = &tokens[cached_until..];
                cached_until = tokens.len();
                self.model.forward_cached(self.tensor(fresh), &mut caches)
            } else {
                start = moved;
                self.model.forward(self.tensor(&tokens[start..]))
            };
            let [_, seq, _] = logits.dims();
            let last: Vec<f32> = logits.narrow(1, seq - 1, 1).to_data().try_to_vec().expect("f32 logits");
            let next = sampler.sample(&last);
            tokens.push(next);
            new_tokens.push(next);
            on_token(next);
        }
        Ok(new_tokens)
    }

    /// Where the window starts for the next step: unchanged while the text fits, else jumped
    /// so that the last `block_size / 2` tokens (at least one) remain.
    fn next_start(&self, len: usize, start: usize) -> usize {
        let block = self.model.block_size;
        if len - start <= block {
            start
        } else {
            len - (block / 2).max(1)
        }
    }

    fn tensor(&self, tokens: &[u32]) -> Tensor<2, Int> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        Tensor::from_data(TensorData::new(ids, [1, tokens.len()]), &self.device)
    }
}

impl Gpt {
    /// Like [`forward`](Self::forward) for new positions only, reading and extending one
    /// cache per block (from [`new_caches`](Self::new_caches)), all of the same length.
    ///
    /// # Shapes
    /// - tokens: `[batch, seq]`, `past + seq ≤ block_size` → `[batch, seq, vocab]`
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, caches: &mut [AttentionCache]) -> Tensor<3> {
        assert_eq!(caches.len(), self.blocks.len(), "one cache per block");
        let mut x = self.wte.forward(tokens);
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            x = block.forward(x, &self.tables, Some(cache));
        }
        self.head(self.ln_f.forward(x))
    }

    /// Fresh, empty caches, one per block (each bounded as its layer needs).
    pub fn new_caches(&self) -> Vec<AttentionCache> {
        self.blocks.iter().map(|b| b.attn.new_cache()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::GptConfig;

    fn model(block_size: usize) -> Gpt {
        GptConfig {
            vocab_size: 13,
            block_size,
            d_model: 16,
            ..GptConfig::nano()
        }
        .init(7, &Device::flex())
        .unwrap()
    }

    fn run(model: &Gpt, prompt: &[u32], n: usize, use_cache: bool, sampler: &mut Sampler) -> Vec<u32> {
        let g = Generator::new(model, Device::flex());
        g.generate(
            prompt,
            GenerateOptions {
                max_new_tokens: n,
                use_cache,
            },
            sampler,
            |_| {},
        )
        .unwrap()
    }

    #[test]
    fn cache_and_recompute_give_identical_greedy_tokens_past_the_context() {
        let model = model(8);
        // 30 new tokens through an 8-token context: the window jumps several times.
        let a = run(&model, &[1, 2, 3], 30, true, &mut Sampler::greedy());
        let b = run(&model, &[1, 2, 3], 30, false, &mut Sampler::greedy());
        assert_eq!(a.len(), 30);
        assert_eq!(a, b);
    }

    #[test]
    fn cache_and_recompute_give_identical_sampled_tokens() {
        let model = model(16);
        let mut s1 = Sampler::new(1.0, Some(5), Some(0.9), 3).unwrap();
        let mut s2 = Sampler::new(1.0, Some(5), Some(0.9), 3).unwrap();
        assert_eq!(
            run(&model, &[4], 20, true, &mut s1),
            run(&model, &[4], 20, false, &mut s2)
        );
    }

    /// One config of each attention variant and model option.
    pub(crate) fn variants(block_size: usize) -> Vec<GptConfig> {
        use crate::config::Attention;
        use ember_nn::Position;
        let base = GptConfig {
            vocab_size: 13,
            block_size,
            d_model: 16,
            n_head: 4,
            ..GptConfig::nano()
        };
        vec![
            base.clone(),
            GptConfig {
                attention: Attention::SlidingWindow,
                window: Some(3),
                ..base.clone()
            },
            GptConfig {
                attention: Attention::SlidingWindow,
                window: Some(3),
                window_pattern: Some("SL".into()),
                ..base.clone()
            },
            GptConfig {
                attention: Attention::Linear,
                ..base.clone()
            },
            GptConfig {
                n_kv_head: Some(2),
                ..base.clone()
            },
            GptConfig {
                n_kv_head: Some(1),
                position: Position::Alibi,
                ..base.clone()
            },
            GptConfig {
                position: Position::None,
                ..base.clone()
            },
            GptConfig {
                rotary_pct: 0.5,
                parallel_residual: true,
                tie_embeddings: false,
                ..base
            },
        ]
    }

    #[test]
    fn every_variant_caches_as_it_recomputes() {
        for config in variants(16) {
            let model = config.init(7, &Device::flex()).unwrap();
            // 40 new tokens through a 16-token context: the window jumps, caches are rebuilt.
            let a = run(&model, &[1, 2, 3], 40, true, &mut Sampler::greedy());
            let b = run(&model, &[1, 2, 3], 40, false, &mut Sampler::greedy());
            assert_eq!(a, b, "{config:?}");
        }
    }

    #[test]
    fn a_long_prompt_is_cropped_to_the_context() {
        let model = model(4);
        let long: Vec<u32> = (0..10).collect();
        let a = run(&model, &long, 3, true, &mut Sampler::greedy());
        let b = run(&model, &long[6..], 3, true, &mut Sampler::greedy());
        assert_eq!(a, b);
    }

    #[test]
    fn out_of_vocabulary_prompts_are_rejected() {
        let model = model(4);
        let g = Generator::new(&model, Device::flex());
        let err = g.generate(
            &[13],
            GenerateOptions {
                max_new_tokens: 1,
                use_cache: true,
            },
            &mut Sampler::greedy(),
            |_| {},
        );
        assert_eq!(err.unwrap_err(), ModelError::TokenOutOfRange { id: 13, vocab: 13 });
    }
}
