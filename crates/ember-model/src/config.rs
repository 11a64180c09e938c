//! The model's hyper-parameters: the `[model]` section of a run config.

use ember_nn::Gelu;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Hyper-parameters of a [`Gpt`](crate::Gpt). Every field has a default (the `nano` preset's),
/// so a config file only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GptConfig {
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `d_model`, with an even quotient (RoPE).
    pub n_head: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Context length: the most tokens the model attends over.
    pub block_size: usize,
    /// Dropout probability on attention weights and residual branches, in [0, 1).
    pub dropout: f64,
    /// Vocabulary size. 0 means "take it from the tokenizer", which is what a run config
    /// normally does; a run directory's resolved config holds the real number.
    pub vocab_size: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
    /// Feed-forward activation: "erf" (exact, the reference) or "tanh" (approximation).
    pub gelu: Gelu,
}

impl Default for GptConfig {
    fn default() -> Self {
        Self::nano()
    }
}

impl GptConfig {
    /// A tiny model for tests and smoke runs: 2 layers, 2 heads, width 32, context 32.
    pub fn nano() -> Self {
        Self {
            n_layer: 2,
            n_head: 2,
            d_model: 32,
            block_size: 32,
            dropout: 0.0,
            vocab_size: 0,
            rope_theta: 10000.0,
            ln_eps: 1e-5,
            gelu: Gelu::Erf,
        }
    }

    /// nanoGPT's CPU baseline for character-level Shakespeare: 4 layers, 4 heads, width 128,
    /// context 64.
    pub fn cpu_baby() -> Self {
        Self {
            n_layer: 4,
            n_head: 4,
            d_model: 128,
            block_size: 64,
            ..Self::nano()
        }
    }

    /// nanoGPT's GPU run for character-level Shakespeare: 6 layers, 6 heads, width 384,
    /// context 256, dropout 0.2.
    pub fn shakespeare_char() -> Self {
        Self {
            n_layer: 6,
            n_head: 6,
            d_model: 384,
            block_size: 256,
            dropout: 0.2,
            ..Self::nano()
        }
    }

    /// Width of one attention head.
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_head
    }

    /// Checks every value; the error names the key, the value and what is expected.
    /// `vocab_size` may still be 0 here (it is filled in from the tokenizer).
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |key, value: &dyn ToString, problem: String| {
            Err(ModelError::InvalidConfig {
                key,
                value: value.to_string(),
                problem,
            })
        };
        if self.n_layer == 0 {
            return bad("n_layer", &self.n_layer, "need at least one layer".into());
        }
        if self.d_model == 0 {
            return bad("d_model", &self.d_model, "must be positive".into());
        }
        if self.n_head == 0 || self.d_model % self.n_head != 0 {
            let divisors: Vec<String> = (1..=self.d_model)
                .filter(|h| self.d_model % h == 0 && (self.d_model / h) % 2 == 0)
                .map(|h| h.to_string())
                .take(8)
                .collect();
            return bad(
                "n_head",
                &self.n_head,
                format!(
                    "must divide d_model = {}; try one of {}",
                    self.d_model,
                    divisors.join(", ")
                ),
            );
        }
        if self.d_head() % 2 != 0 {
            return bad(
                "n_head",
                &self.n_head,
                format!(
                    "gives an odd head size d_model/n_head = {}; RoPE rotates pairs, so it must be even",
                    self.d_head()
                ),
            );
        }
        if self.block_size == 0 {
            return bad(
                "block_size",
                &self.block_size,
                "the context must hold at least one token".into(),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", &self.dropout, "must be in [0, 1)".into());
        }
        if !(self.rope_theta > 1.0) || !self.rope_theta.is_finite() {
            return bad("rope_theta", &self.rope_theta, "must be a finite number above 1".into());
        }
        if !(self.ln_eps > 0.0) || !self.ln_eps.is_finite() {
            return bad(
                "ln_eps",
                &self.ln_eps,
                "must be a small positive number such as 1e-5".into(),
            );
        }
        Ok(())
    }

    /// Like [`validate`](Self::validate), and also requires a known vocabulary size.
    pub fn validate_complete(&self) -> Result<(), ModelError> {
        self.validate()?;
        if self.vocab_size == 0 {
            return Err(ModelError::InvalidConfig {
                key: "vocab_size",
                value: "0".into(),
                problem: "the vocabulary size is unknown; it comes from the tokenizer".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [GptConfig::nano(), GptConfig::cpu_baby(), GptConfig::shakespeare_char()] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn round_trips_through_toml_and_fills_defaults() {
        let c = GptConfig {
            vocab_size: 65,
            gelu: Gelu::Tanh,
            ..GptConfig::cpu_baby()
        };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<GptConfig>(&text).unwrap(), c);
        let partial: GptConfig = toml::from_str("n_layer = 3").unwrap();
        assert_eq!(
            partial,
            GptConfig {
                n_layer: 3,
                ..GptConfig::nano()
            }
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<GptConfig>("n_layers = 3").unwrap_err().to_string();
        assert!(err.contains("n_layers"), "{err}");
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let c = GptConfig {
            n_head: 3,
            d_model: 128,
            ..GptConfig::nano()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("model.n_head = 3: must divide d_model = 128"), "{msg}");
        let c = GptConfig {
            n_head: 4,
            d_model: 12,
            ..GptConfig::nano()
        };
        assert!(c.validate().unwrap_err().to_string().contains("odd head size"));
        let c = GptConfig {
            block_size: 0,
            ..GptConfig::nano()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("model.block_size = 0")
        );
        let c = GptConfig {
            dropout: 1.0,
            ..GptConfig::nano()
        };
        assert!(c.validate().unwrap_err().to_string().starts_with("model.dropout = 1"));
        assert!(GptConfig::nano().validate_complete().is_err());
    }
}
