//! The model's hyper-parameters: the `[model]` section of a run config.

use ember_nn::attention::linear;
use ember_nn::{
    AttentionKind, AttentionMask, AttentionTablesConfig, BlockConfig, CausalSelfAttentionConfig, Gelu, MlpConfig,
    Position,
};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Standard deviation of GPT-2's initialisation of every weight matrix and embedding.
pub const INIT_STD: f64 = 0.02;

/// Which attention the layers use (`model.attention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// Softmax attention over every earlier position.
    #[default]
    Causal,
    /// Softmax attention over the last `model.window` positions (in the layers
    /// `model.window_pattern` marks `S`; the others are causal).
    SlidingWindow,
    /// Linear attention: `φ(q)·φ(k)` for `exp(q·k)`, running sums, O(n).
    Linear,
}

/// Hyper-parameters of a [`Gpt`](crate::Gpt). Every field has a default (the `nano` preset's),
/// so a config file only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GptConfig {
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention (query) heads per block; must divide `d_model` (with RoPE, into an even
    /// head size).
    pub n_head: usize,
    /// Key/value heads (grouped-query attention; 1 is multi-query); must divide `n_head`.
    /// Absent: as many as `n_head`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_kv_head: Option<usize>,
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
    /// Width of the feed-forward hidden layer. Absent: `4·d_model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d_ff: Option<usize>,
    /// "causal", "sliding_window" or "linear".
    pub attention: Attention,
    /// Positions each query sees (itself included), with `attention = "sliding_window"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Which layers have the window, as nanochat: `S` windowed, `L` full context, repeated
    /// over the layers (`"SSSL"` on 8 layers is `SSSLSSSL`). Absent: every layer windowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_pattern: Option<String>,
    /// How attention learns positions: "rope", "alibi" or "none".
    pub position: Position,
    /// Share of each head's coordinates that RoPE rotates (GPT-NeoX's `rotary_pct`; Pythia
    /// uses 0.25).
    pub rotary_pct: f64,
    /// Attention and feed-forward side by side, `x + attn(ln1(x)) + mlp(ln2(x))`, as GPT-NeoX
    /// and Pythia; false: one after the other, as GPT-2.
    pub parallel_residual: bool,
    /// The output head is the token embedding (GPT-2); false: a separate `lm_head` matrix
    /// (GPT-NeoX's `embed_out`).
    pub tie_embeddings: bool,
}

impl Default for GptConfig {
    fn default() -> Self {
        Self::nano()
    }
}

impl GptConfig {
    /// The keys that are absent by default (and so absent from a serialised default config).
    pub const OPTIONAL_KEYS: [&str; 4] = ["n_kv_head", "d_ff", "window", "window_pattern"];

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
            n_kv_head: None,
            d_ff: None,
            attention: Attention::Causal,
            window: None,
            window_pattern: None,
            position: Position::Rope,
            rotary_pct: 1.0,
            parallel_residual: false,
            tie_embeddings: true,
        }
    }

    /// nanoGPT's CPU baseline for character-level Shakespeare: 4 layers, 4 heads, width 128,
    /// context 64 (`configs/cpu-baby.toml`; here for the tests).
    #[cfg(test)]
    pub(crate) fn cpu_baby() -> Self {
        Self {
            n_layer: 4,
            n_head: 4,
            d_model: 128,
            block_size: 64,
            ..Self::nano()
        }
    }

    /// nanoGPT's GPU run for character-level Shakespeare: 6 layers, 6 heads, width 384,
    /// context 256, dropout 0.2 (`configs/shakespeare-char.toml`; here for the tests).
    #[cfg(test)]
    pub(crate) fn shakespeare_char() -> Self {
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

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_head.unwrap_or(self.n_head)
    }

    /// Width of the feed-forward hidden layer.
    pub fn ff_width(&self) -> usize {
        self.d_ff.unwrap_or(4 * self.d_model)
    }

    /// Coordinates of each head that RoPE rotates (`d_head · rotary_pct`, rounded down).
    pub fn rot_dims(&self) -> usize {
        (self.d_head() as f64 * self.rotary_pct + 1e-9).floor() as usize
    }

    /// What layer `layer` attends with.
    pub fn layer_attention(&self, layer: usize) -> AttentionKind {
        match (self.attention, self.window) {
            (Attention::Linear, _) => AttentionKind::Linear,
            (Attention::SlidingWindow, Some(window)) if self.is_windowed(layer) => {
                AttentionKind::Softmax(AttentionMask::SlidingWindow { window })
            }
            _ => AttentionKind::Softmax(AttentionMask::Causal),
        }
    }

    /// Whether `window_pattern` gives layer `layer` the window.
    fn is_windowed(&self, layer: usize) -> bool {
        match &self.window_pattern {
            Some(p) if !p.is_empty() => p.as_bytes()[layer % p.len()] == b'S',
            _ => true,
        }
    }

    /// Block `layer`, with GPT-2's initialisation: N(0, 0.02²), and the two projections that
    /// write to the residual stream scaled down by `√(2·n_layer)`.
    pub fn block(&self, layer: usize) -> BlockConfig {
        let proj_init_std = INIT_STD / (2.0 * self.n_layer as f64).sqrt();
        let attn = CausalSelfAttentionConfig::new(self.d_model, self.n_head)
            .with_n_kv_heads(self.kv_heads())
            .with_kind(self.layer_attention(layer))
            .with_dropout(self.dropout)
            .with_init_std(INIT_STD)
            .with_proj_init_std(proj_init_std);
        let mlp = MlpConfig::new(self.d_model, self.ff_width())
            .with_gelu(self.gelu)
            .with_init_std(INIT_STD)
            .with_proj_init_std(proj_init_std);
        BlockConfig::new(attn, mlp)
            .with_parallel_residual(self.parallel_residual)
            .with_dropout(self.dropout)
            .with_ln_eps(self.ln_eps)
    }

    /// What every layer's attention shares: RoPE's tables, the masks the layers use, ALiBi's
    /// slopes.
    pub fn attention_tables(&self) -> AttentionTablesConfig {
        let kinds: Vec<AttentionKind> = (0..self.n_layer).map(|l| self.layer_attention(l)).collect();
        let windowed = |k: &AttentionKind| matches!(k, AttentionKind::Softmax(AttentionMask::SlidingWindow { .. }));
        AttentionTablesConfig::new(self.block_size, self.n_head, self.d_head())
            .with_position(self.position)
            .with_rope_theta(self.rope_theta)
            .with_rot_dims(self.rot_dims())
            .with_full(kinds.contains(&AttentionKind::Softmax(AttentionMask::Causal)))
            .with_window(self.window.filter(|_| kinds.iter().any(windowed)))
    }

    /// Positions a query at the end of a full context attends over, on average over the
    /// layers: the context for full attention, the window for a sliding window, and for
    /// linear attention the pairs of its chunks (its running sums cost about as much again).
    pub fn keys_per_query(&self) -> f64 {
        let per_layer = |l: usize| match self.layer_attention(l) {
            AttentionKind::Softmax(AttentionMask::Causal) => self.block_size,
            AttentionKind::Softmax(AttentionMask::SlidingWindow { window }) => window.min(self.block_size),
            AttentionKind::Linear => linear::CHUNK.min(self.block_size),
        };
        (0..self.n_layer).map(per_layer).sum::<usize>() as f64 / self.n_layer.max(1) as f64
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
        // Bounds far beyond any model ember can train, so that no arithmetic on the sizes
        // overflows and no loop over them runs for ever; whether a model fits in memory is
        // checked before it is built (ember-train's `memory`).
        let limits: [(&'static str, usize, usize); 6] = [
            ("n_layer", self.n_layer, 1 << 12),
            ("n_head", self.n_head, 1 << 12),
            ("d_model", self.d_model, 1 << 18),
            ("block_size", self.block_size, 1 << 22),
            ("vocab_size", self.vocab_size, 1 << 31),
            ("d_ff", self.d_ff.unwrap_or(0), 1 << 20),
        ];
        for (key, value, limit) in limits {
            if value > limit {
                return bad(key, &value, format!("is larger than ember supports (at most {limit})"));
            }
        }
        if self.n_layer == 0 {
            return bad("n_layer", &self.n_layer, "need at least one layer".into());
        }
        if self.d_model == 0 {
            return bad("d_model", &self.d_model, "must be positive".into());
        }
        let rope = self.position == Position::Rope;
        if self.n_head == 0 || self.d_model % self.n_head != 0 {
            let divisors: Vec<String> = (1..=self.d_model)
                .filter(|h| self.d_model % h == 0 && (!rope || (self.d_model / h) % 2 == 0))
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
        if let Some(kv) = self.n_kv_head
            && (kv == 0 || self.n_head % kv != 0)
        {
            let divisors: Vec<String> = (1..=self.n_head)
                .filter(|k| self.n_head % k == 0)
                .map(|k| k.to_string())
                .collect();
            return bad(
                "n_kv_head",
                &kv,
                format!(
                    "must divide n_head = {} (each key/value head serves a group of query heads); try one of {}",
                    self.n_head,
                    divisors.join(", ")
                ),
            );
        }
        if !(self.rotary_pct > 0.0 && self.rotary_pct <= 1.0) {
            return bad("rotary_pct", &self.rotary_pct, "must be in (0, 1]".into());
        }
        if !rope && self.rotary_pct != 1.0 {
            return bad(
                "rotary_pct",
                &self.rotary_pct,
                format!(
                    "applies to RoPE only, and model.position = \"{}\"; remove the key",
                    position_name(self.position)
                ),
            );
        }
        if rope && (self.rot_dims() == 0 || self.rot_dims() % 2 != 0) {
            let problem = if self.rotary_pct == 1.0 {
                format!(
                    "gives an odd head size d_model/n_head = {}; RoPE rotates pairs, so it must be even",
                    self.d_head()
                )
            } else {
                format!(
                    "rotates {} of each head's {} coordinates (rounded down); RoPE rotates pairs, so it must be a positive even number",
                    self.rot_dims(),
                    self.d_head()
                )
            };
            let key = if self.rotary_pct == 1.0 { "n_head" } else { "rotary_pct" };
            let value: &dyn ToString = if self.rotary_pct == 1.0 {
                &self.n_head
            } else {
                &self.rotary_pct
            };
            return bad(key, value, problem);
        }
        if self.d_ff == Some(0) {
            return bad("d_ff", &0, "must be positive (absent: 4·d_model)".into());
        }
        self.validate_attention()?;
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

    /// The attention keys: `attention`, `window`, `window_pattern`, and how `position` fits.
    fn validate_attention(&self) -> Result<(), ModelError> {
        let bad = |key, value: String, problem: String| Err(ModelError::InvalidConfig { key, value, problem });
        let windowed = self.attention == Attention::SlidingWindow;
        match (windowed, self.window) {
            (false, Some(w)) => {
                return bad(
                    "window",
                    w.to_string(),
                    format!(
                        "is used only with model.attention = \"sliding_window\" (it is \"{}\"); remove the key or set the attention",
                        attention_name(self.attention)
                    ),
                );
            }
            (true, None) => {
                return bad(
                    "attention",
                    "\"sliding_window\"".into(),
                    "needs model.window, the positions each query sees (e.g. window = 64)".into(),
                );
            }
            (true, Some(0)) => return bad("window", "0".into(), "must be at least 1 (a query sees itself)".into()),
            (true, Some(w)) if w >= self.block_size => {
                return bad(
                    "window",
                    w.to_string(),
                    format!(
                        "sees the whole context of block_size = {}; use a smaller window, or model.attention = \"causal\"",
                        self.block_size
                    ),
                );
            }
            _ => {}
        }
        if let Some(pattern) = &self.window_pattern {
            let value = format!("{pattern:?}");
            if !windowed {
                return bad(
                    "window_pattern",
                    value,
                    "is used only with model.attention = \"sliding_window\"; remove the key or set the attention"
                        .into(),
                );
            }
            if pattern.is_empty() || !pattern.bytes().all(|b| b == b'S' || b == b'L') {
                return bad(
                    "window_pattern",
                    value,
                    "must be letters S (windowed layer) and L (full context), e.g. \"SSSL\"".into(),
                );
            }
            if !(0..self.n_layer).any(|l| self.is_windowed(l)) {
                return bad(
                    "window_pattern",
                    value,
                    format!("gives none of the {} layers a window; add an S", self.n_layer),
                );
            }
        }
        if self.attention == Attention::Linear && self.position == Position::Alibi {
            return bad(
                "position",
                "\"alibi\"".into(),
                "biases the scores of softmax attention, and linear attention has none; use \"rope\" or \"none\""
                    .into(),
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

/// A `model.attention` value as a config file spells it.
pub fn attention_name(a: Attention) -> &'static str {
    match a {
        Attention::Causal => "causal",
        Attention::SlidingWindow => "sliding_window",
        Attention::Linear => "linear",
    }
}

/// A `model.position` value as a config file spells it.
pub fn position_name(p: Position) -> &'static str {
    match p {
        Position::Rope => "rope",
        Position::Alibi => "alibi",
        Position::None => "none",
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

    fn error(c: GptConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn invalid_attention_combinations_name_the_keys() {
        let base = GptConfig::nano;
        let msg = error(GptConfig {
            window: Some(8),
            ..base()
        });
        assert!(
            msg.starts_with("model.window = 8: is used only with model.attention = \"sliding_window\""),
            "{msg}"
        );
        let msg = error(GptConfig {
            attention: Attention::SlidingWindow,
            ..base()
        });
        assert!(
            msg.starts_with("model.attention = \"sliding_window\": needs model.window"),
            "{msg}"
        );
        let windowed = || GptConfig {
            attention: Attention::SlidingWindow,
            window: Some(8),
            ..base()
        };
        windowed().validate().unwrap();
        let msg = error(GptConfig {
            window: Some(0),
            ..windowed()
        });
        assert!(msg.starts_with("model.window = 0: must be at least 1"), "{msg}");
        let msg = error(GptConfig {
            window: Some(32),
            ..windowed()
        });
        assert!(msg.contains("sees the whole context of block_size = 32"), "{msg}");
        let msg = error(GptConfig {
            window_pattern: Some("SXL".into()),
            ..windowed()
        });
        assert!(
            msg.starts_with("model.window_pattern = \"SXL\": must be letters S"),
            "{msg}"
        );
        let msg = error(GptConfig {
            window_pattern: Some("LL".into()),
            ..windowed()
        });
        assert!(msg.contains("gives none of the 2 layers a window"), "{msg}");
        let msg = error(GptConfig {
            window_pattern: Some("SL".into()),
            ..base()
        });
        assert!(
            msg.starts_with("model.window_pattern = \"SL\": is used only with"),
            "{msg}"
        );
        let msg = error(GptConfig {
            n_kv_head: Some(3),
            n_head: 4,
            ..base()
        });
        assert!(
            msg.starts_with("model.n_kv_head = 3: must divide n_head = 4") && msg.ends_with("1, 2, 4"),
            "{msg}"
        );
        assert!(
            error(GptConfig {
                n_kv_head: Some(0),
                ..base()
            })
            .starts_with("model.n_kv_head = 0")
        );
        let msg = error(GptConfig {
            attention: Attention::Linear,
            position: Position::Alibi,
            ..base()
        });
        assert!(
            msg.starts_with("model.position = \"alibi\": biases the scores"),
            "{msg}"
        );
        let msg = error(GptConfig {
            position: Position::Alibi,
            rotary_pct: 0.5,
            ..base()
        });
        assert!(msg.starts_with("model.rotary_pct = 0.5: applies to RoPE only"), "{msg}");
        // d_head 16: a quarter is 4 coordinates, fine; 0.1 gives 1, odd.
        GptConfig {
            rotary_pct: 0.25,
            ..base()
        }
        .validate()
        .unwrap();
        let msg = error(GptConfig {
            rotary_pct: 0.1,
            ..base()
        });
        assert!(
            msg.starts_with("model.rotary_pct = 0.1: rotates 1 of each head's 16"),
            "{msg}"
        );
        // Without RoPE any head size is fine.
        GptConfig {
            n_head: 32,
            position: Position::None,
            ..base()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn a_window_pattern_repeats_over_the_layers() {
        let c = GptConfig {
            n_layer: 6,
            block_size: 64,
            attention: Attention::SlidingWindow,
            window: Some(8),
            window_pattern: Some("SSL".into()),
            ..GptConfig::nano()
        };
        c.validate().unwrap();
        let w = AttentionKind::Softmax(AttentionMask::SlidingWindow { window: 8 });
        let full = AttentionKind::Softmax(AttentionMask::Causal);
        let kinds: Vec<_> = (0..6).map(|l| c.layer_attention(l)).collect();
        assert_eq!(kinds, [w, w, full, w, w, full]);
        assert_eq!(c.keys_per_query(), (4.0 * 8.0 + 2.0 * 64.0) / 6.0);
    }

    #[test]
    fn new_keys_keep_old_configs_and_round_trip() {
        let c: GptConfig = toml::from_str(
            "attention = \"sliding_window\"\nwindow = 4\nn_kv_head = 1\nposition = \"alibi\"\nparallel_residual = true\ntie_embeddings = false\nd_ff = 48",
        )
        .unwrap();
        assert_eq!(c.attention, Attention::SlidingWindow);
        assert_eq!(c.position, Position::Alibi);
        assert_eq!(toml::from_str::<GptConfig>(&toml::to_string(&c).unwrap()).unwrap(), c);
        // An old config, without the new keys, is today's model.
        assert_eq!(toml::from_str::<GptConfig>("n_layer = 2").unwrap(), GptConfig::nano());
        let err = toml::from_str::<GptConfig>("position = \"learned\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rope") && err.contains("alibi"), "{err}");
    }
}
